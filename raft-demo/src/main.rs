//! `raft-demo`: run a node, talk to a cluster, or benchmark one.

use core::time::Duration;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use walden_raft_demo::client::{self, Client};
use walden_raft_demo::node::{self, NodeOptions, StoreKind};
use walden_raft_demo::proto::{Call, Reply};

const USAGE: &str = "usage:
  raft-demo node --id N --listen 127.0.0.1:PORT --dir DIR [--store walden|memory]
                 [--idle-timeout SECONDS] [--max-connections N]
  raft-demo init --addr ADDR --members 1=ADDR1,2=ADDR2,3=ADDR3
  raft-demo put --addr ADDR[,ADDR..] KEY VALUE
  raft-demo get --addr ADDR KEY
  raft-demo status --addr ADDR
  raft-demo bench [--clients 1,16,64] [--seconds 3] [--store walden,memory]";

/// Exit status of a bad command line (an unknown command or option, a missing or malformed
/// value, a wrong number of arguments): the usage is printed. A command that fails exits 1.
const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    let mut args = Vec::new();
    for a in std::env::args_os().skip(1) {
        match a.into_string() {
            Ok(a) => args.push(a),
            Err(a) => {
                eprintln!("raft-demo: argument {a:?} is not UTF-8\n{USAGE}");
                return ExitCode::from(USAGE_ERROR);
            }
        }
    }
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(USAGE_ERROR);
    };
    // Everything the command line alone can get wrong is found here, before anything starts.
    let command = match command(cmd, rest) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("raft-demo {cmd}: {e}\n{USAGE}");
            return ExitCode::from(USAGE_ERROR);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(execute(command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raft-demo {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The options each command takes, and how many positional arguments.
const COMMANDS: &[(&str, &[&str], usize)] = &[
    (
        "node",
        &[
            "id",
            "listen",
            "dir",
            "store",
            "idle-timeout",
            "max-connections",
        ],
        0,
    ),
    ("init", &["addr", "members"], 0),
    ("put", &["addr"], 2),
    ("get", &["addr"], 1),
    ("status", &["addr"], 0),
    ("bench", &["clients", "seconds", "store"], 0),
];

/// `--name value` options and the remaining positional arguments of `cmd`. An option `cmd`
/// does not take (a typo such as `--stroe` would otherwise leave its default in force), an
/// option given twice and a stray argument are refused.
fn parse(cmd: &str, args: &[String]) -> Result<(BTreeMap<String, String>, Vec<String>), String> {
    let Some((_, names, positional)) = COMMANDS.iter().find(|(c, ..)| *c == cmd) else {
        return Err(format!("unknown command {cmd}"));
    };
    let mut opts = BTreeMap::new();
    let mut pos = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.strip_prefix("--") {
            Some(name) => {
                if !names.contains(&name) {
                    return Err(format!("{cmd} takes no option --{name}"));
                }
                let v = it.next().ok_or(format!("--{name} needs a value"))?;
                if opts.insert(name.to_string(), v.clone()).is_some() {
                    return Err(format!("--{name} is given twice"));
                }
            }
            None => pos.push(a.clone()),
        }
    }
    if pos.len() != *positional {
        return Err(format!(
            "{cmd} takes {positional} argument{} besides its options, not {}",
            if *positional == 1 { "" } else { "s" },
            pos.len()
        ));
    }
    Ok((opts, pos))
}

fn need<'a>(opts: &'a BTreeMap<String, String>, name: &str) -> Result<&'a str, String> {
    opts.get(name)
        .map(String::as_str)
        .ok_or(format!("--{name} is required"))
}

/// A command line, checked.
enum Command {
    Node(NodeOptions),
    Init {
        addr: String,
        members: BTreeMap<u64, String>,
    },
    Put {
        addrs: Vec<String>,
        key: String,
        value: String,
    },
    Get {
        addr: String,
        key: String,
    },
    Status {
        addr: String,
    },
    Bench {
        clients: Vec<usize>,
        seconds: f64,
        stores: Vec<StoreKind>,
    },
}

/// The command `cmd` with `args`, or what is wrong with the command line (a usage error).
fn command(cmd: &str, args: &[String]) -> Result<Command, String> {
    let (opts, pos) = parse(cmd, args)?;
    let one = |name: &str| need(&opts, name).map(String::from);
    Ok(match cmd {
        "node" => {
            let store = opts.get("store").map_or("walden", String::as_str);
            let idle_timeout = match opts.get("idle-timeout") {
                None => node::IDLE_TIMEOUT,
                Some(s) => match s.parse::<f64>() {
                    Ok(t) if t > 0.0 && t <= 3600.0 => Duration::from_secs_f64(t),
                    _ => return Err(format!("--idle-timeout: {s} is not in (0, 3600] seconds")),
                },
            };
            let max_connections = match opts.get("max-connections") {
                None => node::MAX_CONNECTIONS,
                Some(s) => match s.parse::<usize>() {
                    Ok(n) if (1..=1 << 20).contains(&n) => n,
                    _ => {
                        return Err(format!(
                            "--max-connections: {s} is not a number from 1 to 1048576"
                        ));
                    }
                },
            };
            Command::Node(NodeOptions {
                id: need(&opts, "id")?
                    .parse()
                    .map_err(|e| format!("--id: {e}"))?,
                listen: one("listen")?,
                dir: PathBuf::from(need(&opts, "dir")?),
                store: StoreKind::parse(store).ok_or(format!("unknown store {store}"))?,
                idle_timeout,
                max_connections,
            })
        }
        "init" => {
            let mut members = BTreeMap::new();
            for m in need(&opts, "members")?.split(',') {
                let (id, addr) = m.split_once('=').ok_or(format!("bad member {m}"))?;
                let id: u64 = id.parse().map_err(|e| format!("{m}: {e}"))?;
                if members.insert(id, addr.to_string()).is_some() {
                    return Err(format!("--members: node {id} is given twice"));
                }
            }
            Command::Init {
                addr: one("addr")?,
                members,
            }
        }
        "put" => {
            let [key, value] = pos.as_slice() else {
                return Err("put takes KEY VALUE".into());
            };
            Command::Put {
                addrs: need(&opts, "addr")?.split(',').map(String::from).collect(),
                key: key.clone(),
                value: value.clone(),
            }
        }
        "get" => {
            let [key] = pos.as_slice() else {
                return Err("get takes KEY".into());
            };
            Command::Get {
                addr: one("addr")?,
                key: key.clone(),
            }
        }
        "status" => Command::Status { addr: one("addr")? },
        "bench" => {
            let clients: Vec<usize> = opts
                .get("clients")
                .map_or("1,16,64", String::as_str)
                .split(',')
                .map(|c| c.parse().map_err(|e| format!("--clients: {e}")))
                .collect::<Result<_, _>>()?;
            let seconds: f64 = opts.get("seconds").map_or(Ok(3.0), |s| {
                s.parse().map_err(|e| format!("--seconds: {e}"))
            })?;
            let stores: Vec<StoreKind> = opts
                .get("store")
                .map_or("walden,memory", String::as_str)
                .split(',')
                .map(|s| StoreKind::parse(s).ok_or(format!("unknown store {s}")))
                .collect::<Result<_, _>>()?;
            walden_raft_demo::bench::check(&clients, seconds)?;
            Command::Bench {
                clients,
                seconds,
                stores,
            }
        }
        _ => return Err(format!("unknown command {cmd}")),
    })
}

/// Runs a checked command line: an error here is the command failing (exit status 1).
async fn execute(command: Command) -> Result<(), String> {
    let deadline = || Instant::now() + Duration::from_secs(30);
    match command {
        Command::Node(opts) => node::run(opts).await,
        Command::Init { addr, members } => match client::call(&addr, &Call::Init(members)).await? {
            Reply::Done => {
                println!("initialized");
                Ok(())
            }
            Reply::Refused(why) | Reply::Failed(why) => Err(why),
            other => Err(format!("{other:?}")),
        },
        Command::Put { addrs, key, value } => {
            let mut c = Client::new(addrs);
            let index = c.write(&key, &value, deadline()).await?;
            println!("ok: {key} = {value} (log index {index}, via {})", c.addr());
            Ok(())
        }
        Command::Get { addr, key } => {
            match client::read(&addr, &key).await? {
                Some(v) => println!("{v}"),
                None => println!("(not set)"),
            }
            Ok(())
        }
        Command::Status { addr } => {
            let s = client::status(&addr).await?;
            println!(
                "node {} {} term {} leader {:?} last_log {:?} applied {:?} keys {} members {:?}",
                s.id, s.state, s.term, s.leader, s.last_log, s.applied, s.keys, s.members
            );
            Ok(())
        }
        Command::Bench {
            clients,
            seconds,
            stores,
        } => {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let rows = walden_raft_demo::bench::run(&exe, &stores, &clients, seconds).await?;
            print!("{}", walden_raft_demo::bench::table(&rows));
            Ok(())
        }
    }
}
