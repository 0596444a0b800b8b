//! What the numbers were measured on: CPU, memory, kernel, and the disk and file system under
//! the data directory. Read from /proc, /sys and `df`, best effort: anything unreadable is
//! reported as "unknown" rather than failing the run.

use std::{fs, path::Path, process::Command};

/// A description of the machine and the storage under the data directory.
#[derive(Clone, Debug)]
pub(crate) struct Machine {
    /// CPU model name from /proc/cpuinfo.
    pub(crate) cpu: String,
    /// Logical CPUs available to this process.
    pub(crate) cpus: usize,
    /// CPU features that matter for checksums.
    pub(crate) cpu_flags: String,
    /// Total memory.
    pub(crate) memory: String,
    /// Kernel release.
    pub(crate) kernel: String,
    /// Block device, file-system type and mount point of the data directory (from `df -T`).
    pub(crate) device: String,
    /// File-system type.
    pub(crate) filesystem: String,
    /// Mount point.
    pub(crate) mount: String,
    /// Whether the kernel believes the device is rotational, and its model if known.
    pub(crate) disk: String,
}

impl Machine {
    /// Describes this machine and the storage under `dir`.
    pub(crate) fn describe(dir: &Path) -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        };
        let flags = field("flags").unwrap_or_default();
        let cpu_flags = ["sse4_2", "pclmulqdq", "avx2", "avx512f", "vpclmulqdq"]
            .iter()
            .filter(|f| flags.split_whitespace().any(|x| x == **f))
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        let memory = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines().find(|l| l.starts_with("MemTotal")).map(|l| {
                    let kib: u64 = l
                        .split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    format!("{:.1} GiB", kib as f64 / (1u64 << 20) as f64)
                })
            })
            .unwrap_or_else(unknown);
        let (device, filesystem, mount) =
            df(dir).unwrap_or_else(|| (unknown(), unknown(), unknown()));
        Machine {
            cpu: field("model name").unwrap_or_else(unknown),
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_flags,
            memory,
            kernel: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(unknown),
            disk: disk(&device),
            device,
            filesystem,
            mount,
        }
    }
}

fn unknown() -> String {
    "unknown".to_owned()
}

fn read_trimmed(path: &str) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// `(device, fs type, mount point)` of `dir` from `df -T`.
fn df(dir: &Path) -> Option<(String, String, String)> {
    let out = Command::new("df").arg("-T").arg(dir).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1)?;
    let cols: Vec<&str> = line.split_whitespace().collect();
    Some((
        (*cols.first()?).to_owned(),
        (*cols.get(1)?).to_owned(),
        (*cols.last()?).to_owned(),
    ))
}

/// The device's model and rotational flag from /sys/block, e.g. "virtio disk, non-rotational".
fn disk(device: &str) -> String {
    let Some(name) = device.strip_prefix("/dev/") else {
        return format!("{device} (not a block device)");
    };
    // Partitions (vda1, nvme0n1p2) share their parent's queue settings.
    let parent = ["block", "class/block"].iter().find_map(|base| {
        let link = fs::canonicalize(format!("/sys/{base}/{name}")).ok()?;
        let dir = if link.join("partition").exists() {
            link.parent()?.to_path_buf()
        } else {
            link
        };
        Some(dir)
    });
    let Some(dir) = parent else {
        return format!("{name} (no /sys entry)");
    };
    let rotational = match read_trimmed(&dir.join("queue/rotational").to_string_lossy()).as_deref()
    {
        Some("0") => "non-rotational",
        Some("1") => "rotational",
        _ => "rotational: unknown",
    };
    let model = read_trimmed(&dir.join("device/model").to_string_lossy())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            let base = dir.file_name().map(|n| n.to_string_lossy().into_owned());
            match base.as_deref() {
                Some(n) if n.starts_with("vd") => "virtio block device".to_owned(),
                Some(n) => n.to_owned(),
                None => unknown(),
            }
        });
    format!("{model}, {rotational}")
}
