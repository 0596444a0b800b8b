//! tmp
use walden_lazyfs::harness::*;
use walden_lazyfs::*;

#[test]
fn smoke() {
    let bench = Bench::new().unwrap();
    let t = std::time::Instant::now();
    let out = run_point(&bench, Point { crash_after: None, plan: CrashPlan::DropAll, recovery_crash: None }, None, None).unwrap();
    eprintln!("ops {} journal completed {} err {:?} durable {} front {} verdict {:?} in {:?}", out.ops, out.journal.completed, out.journal.error, out.journal.durable, out.journal.front, out.verdict, t.elapsed());
    eprintln!("{}", out.image.listing());
}
