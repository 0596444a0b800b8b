//! An emulated NOR flash in RAM: erasing sets bits, programming clears them (a word may be
//! programmed again, clearing more), and the power can be cut during a program, which then
//! clears only some of the bits it was clearing.

use embedded_storage::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
    check_erase, check_read, check_write,
};

/// Bytes per program word.
pub const WORD: usize = 4;
/// Bytes per erase block.
pub const BLOCK: usize = 1024;

/// The flash's error: misuse, or the power being off.
#[derive(Clone, Copy, Debug)]
pub struct RamFlashError(pub NorFlashErrorKind);

impl NorFlashError for RamFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        self.0
    }
}

/// `N` bytes of NOR flash (a multiple of [`BLOCK`]), erased.
pub struct RamFlash<const N: usize> {
    bytes: [u8; N],
    programs: u32,
    cut_at: Option<u32>,
    off: bool,
}

impl<const N: usize> RamFlash<N> {
    /// An erased flash.
    pub const fn new() -> Self {
        Self {
            bytes: [0xFF; N],
            programs: 0,
            cut_at: None,
            off: false,
        }
    }

    /// The power goes out during the `n`-th program from now (0 = the next one): its first
    /// word is torn (only the low bits of each byte cleared), nothing after it programmed.
    pub fn cut_power_during_program(&mut self, n: u32) {
        self.cut_at = Some(self.programs + n);
    }

    /// Power comes back: the flash keeps what it holds, the torn word included.
    pub fn power_on(&mut self) {
        self.off = false;
        self.cut_at = None;
    }

    fn power(&self) -> Result<(), RamFlashError> {
        if self.off {
            return Err(RamFlashError(NorFlashErrorKind::Other));
        }
        Ok(())
    }
}

impl<const N: usize> ErrorType for RamFlash<N> {
    type Error = RamFlashError;
}

impl<const N: usize> ReadNorFlash for RamFlash<N> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), RamFlashError> {
        self.power()?;
        check_read(self, offset, bytes.len()).map_err(RamFlashError)?;
        let at = offset as usize;
        bytes.copy_from_slice(&self.bytes[at..at + bytes.len()]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        N
    }
}

impl<const N: usize> NorFlash for RamFlash<N> {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = BLOCK;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), RamFlashError> {
        self.power()?;
        check_erase(self, from, to).map_err(RamFlashError)?;
        self.bytes[from as usize..to as usize].fill(0xFF);
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), RamFlashError> {
        self.power()?;
        check_write(self, offset, bytes.len()).map_err(RamFlashError)?;
        let at = offset as usize;
        let target = &mut self.bytes[at..at + bytes.len()];
        if self.cut_at == Some(self.programs) {
            self.off = true;
            for (old, new) in target[..WORD].iter_mut().zip(bytes) {
                *old &= new | 0xF0; // only the low four bits got programmed
            }
            return Err(RamFlashError(NorFlashErrorKind::Other));
        }
        self.programs += 1;
        for (old, new) in target.iter_mut().zip(bytes) {
            *old &= new;
        }
        Ok(())
    }
}

impl<const N: usize> MultiwriteNorFlash for RamFlash<N> {}
