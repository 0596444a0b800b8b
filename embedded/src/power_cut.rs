//! The demo: the log on walden-flash over an emulated NOR flash, the power cut in the middle of
//! programming an append, and recovery on the next boot.

use cortex_m_semihosting::hprintln;
use walden_core::{Config, Fixed, Lsn, Wal};
use walden_flash::{FlashStorage, Layout};

use crate::Summary;
use crate::ramflash::{BLOCK, RamFlash};
use crate::stack;

/// 11 areas of one 1 KiB block: 8 segments, the two start slots and a spare.
const AREAS: usize = 11;
type Flash = RamFlash<{ AREAS * BLOCK }>;
type Storage = FlashStorage<&'static mut Flash, AREAS>;
type Log = Wal<Storage, Fixed<8>>;

const RECORDS: u64 = 20;

fn payload(i: u64) -> [u8; 24] {
    let mut p = [(i as u8).wrapping_mul(37); 24];
    p[..8].copy_from_slice(&i.to_le_bytes());
    p
}

fn mount(flash: &'static mut Flash) -> Result<Storage, &'static str> {
    FlashStorage::mount(flash, Layout::new(AREAS as u32, 1)).map_err(|_| "mount failed")
}

pub fn run() -> Result<Summary, &'static str> {
    let flash = cortex_m::singleton!(: Flash = Flash::new()).ok_or("flash taken")?;
    let storage = mount(flash)?;
    let config = Config::small_device(storage.segment_size()).with_salt_seed(0xf1a5);
    let mut scratch = [0u8; 256];
    let (mut wal, report) = Log::open(storage, config, &mut scratch).map_err(|_| "open failed")?;
    hprintln!("boot 1: {}", report);
    for i in 1..=RECORDS {
        wal.append(&payload(i)).map_err(|_| "append failed")?;
    }
    hprintln!(
        "appended {} records, each durable on return; {} segments",
        RECORDS,
        wal.segments().len()
    );
    let mut storage = wal.into_storage();
    let flash = storage_flash(&mut storage);
    flash.cut_power_during_program(1);
    let (mut wal, _) = Log::open(storage, config, &mut scratch).map_err(|_| "reopen failed")?;
    match wal.append(&payload(RECORDS + 1)) {
        Ok(_) => return Err("the power cut did not happen"),
        Err(_) => hprintln!("power cut while programming record {}", RECORDS + 1),
    }
    let flash = wal.into_storage().into_inner();
    flash.power_on();

    let storage = mount(flash)?;
    let (opened, open_stack) = stack::measure(|| Log::open(storage, config, &mut scratch));
    let (mut wal, report) = opened.map_err(|_| "recovery failed")?;
    hprintln!("boot 2: {}", report);
    if report.cut.is_none() {
        return Err("recovery did not report the torn tail");
    }
    let mut buf = [0u8; 64];
    let mut read_back = 0;
    let mut reader = wal.reader(wal.first_lsn()).map_err(|_| "reader failed")?;
    while let Some(record) = reader.next(&mut buf).map_err(|_| "read failed")? {
        if record.payload != payload(record.lsn.0) {
            return Err("a record read back wrong");
        }
        read_back += 1;
    }
    let lsn = wal
        .append(&payload(RECORDS + 1))
        .map_err(|_| "append after recovery failed")?;
    if lsn != Lsn(RECORDS + 1) {
        return Err("the append after recovery got the wrong LSN");
    }
    let removed = wal
        .truncate_front(Lsn(RECORDS))
        .map_err(|_| "truncate_front failed")?;
    Ok(Summary {
        appended: RECORDS + 1,
        recovered: report.records,
        read_back,
        removed: removed as u64,
        open_stack: open_stack as u64,
    })
}

/// The flash under the storage, to arm the power cut (remounting gives it back as it is).
fn storage_flash(storage: &mut Storage) -> &mut Flash {
    #[allow(clippy::explicit_auto_deref)]
    storage.flash_mut()
}
