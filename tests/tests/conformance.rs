//! The conformance suite over real files and over the simulator.

mod files {
    walden_conformance::conformance_suite!(walden_tests::media::FileMedium::new());
}

mod sim {
    walden_conformance::conformance_suite!(walden_tests::media::SimMedium::new());
}
