use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};

use super::*;

type Nor = NorSim<4, 256>;

#[test]
fn programming_only_clears_bits_and_erasing_sets_them() {
    let mut nor = Nor::new(2, 1);
    nor.write(0, &[0x0F, 0xF0, 0xFF, 0x00]).unwrap();
    nor.write(0, &[0xFF, 0x30, 0xFF, 0xFF]).unwrap();
    let mut got = [0u8; 4];
    nor.read(0, &mut got).unwrap();
    assert_eq!(got, [0x0F, 0x30, 0xFF, 0x00]);
    assert_eq!(nor.misuse(), 0);
    nor.write(0, &[0xFF, 0xFF, 0xFF, 0x01]).unwrap();
    assert_eq!(
        nor.misuse(),
        1,
        "setting a cleared bit is counted, and does nothing"
    );
    nor.erase(0, 256).unwrap();
    nor.read(0, &mut got).unwrap();
    assert_eq!(got, [0xFF; 4]);
    assert!(nor.write(1, &[0; 4]).is_err(), "unaligned");
    assert!(nor.erase(0, 100).is_err(), "not a block");
    assert!(nor.write(512, &[0; 4]).is_err(), "out of bounds");
}

#[test]
fn a_torn_program_changes_only_its_words_and_only_clears_bits() {
    let mut nor = Nor::new(1, 7);
    nor.write(0, &[0xAA; 4]).unwrap();
    nor.crash_after(1);
    assert!(nor.write(0, &[0x00; 12]).is_err());
    assert!(nor.has_crashed());
    let mut buf = [0u8; 4];
    assert!(
        nor.read(0, &mut buf).is_err(),
        "reads fail once the power is off"
    );
    let states = nor.crash_states(1000);
    assert_eq!(states.len(), 2 + 4 * 3);
    for fate in states {
        let after = nor.crash(fate);
        let bytes = after.contents();
        for (i, b) in bytes[..12].iter().enumerate() {
            let old = if i < 4 { 0xAA } else { 0xFF };
            assert_eq!(b & !old, 0, "{fate}: a bit was set at byte {i}");
        }
        assert!(
            bytes[12..].iter().all(|&b| b == 0xFF),
            "{fate}: beyond the write"
        );
        match fate {
            NorFate::Untouched => assert_eq!(
                bytes[..12],
                [
                    0xAA, 0xAA, 0xAA, 0xAA, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF
                ]
            ),
            NorFate::Done => assert_eq!(bytes[..12], [0; 12]),
            NorFate::Torn { unit, .. } => {
                let u = unit as usize * 4;
                assert!(
                    bytes[..u].iter().all(|&b| b == 0),
                    "{fate}: earlier words done"
                );
                assert!(
                    bytes[u + 4..12].iter().all(|&b| b != 0),
                    "{fate}: later words untouched"
                );
                assert!(
                    bytes[u..u + 4].iter().any(|&b| b != 0),
                    "{fate}: torn word not whole"
                );
            }
        }
    }
}

#[test]
fn a_torn_erase_leaves_arbitrary_bits_in_its_block_only() {
    let mut nor = Nor::new(3, 9);
    nor.write(0, &[0u8; 256].repeat(3)).unwrap();
    nor.crash_after(1);
    assert!(nor.erase(0, 512).is_err());
    let states = nor.crash_states(1000);
    assert_eq!(states.len(), 2 + 4 * 2);
    let mut distinct = alloc::collections::BTreeSet::new();
    for fate in states {
        let after = nor.crash(fate);
        distinct.insert(after.fingerprint());
        assert!(
            after.contents()[512..].iter().all(|&b| b == 0),
            "{fate}: third block"
        );
        if let NorFate::Torn { unit: 1, .. } = fate {
            assert!(after.contents()[..256].iter().all(|&b| b == 0xFF), "{fate}");
        }
    }
    assert_eq!(distinct.len(), 10, "every outcome differs");
}

#[test]
fn states_are_sampled_past_the_bound_and_keep_both_ends() {
    let mut nor = NorSim::<1, 256>::new(1, 3);
    nor.crash_after(0);
    assert!(nor.write(0, &[0u8; 200]).is_err());
    let states = nor.crash_states(50);
    assert_eq!(states.len(), 50);
    assert_eq!(states[0], NorFate::Untouched);
    assert_eq!(states[1], NorFate::Done);
}
