#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod effect;
mod error;
mod explore;
mod fault;
mod fs;
mod nor;
mod plan;
mod rng;
mod sim;
mod trace;

pub use effect::UnsyncedEffect;
pub use error::{SimError, SimErrorCause};
pub use explore::{CaseId, CaseIdParseError, CrashBounds, CrashStates, PlanDescription, PlanPick};
pub use fault::{FaultAction, FaultSchedule, Trigger};
pub use fs::{FsEffect, FsOp, FsTraceEntry, Inode, SimFs};
pub use nor::{NorFate, NorOp, NorSim, NorSimError, Partial};
pub use plan::{CrashPlan, Fate, Tear, TearShape, TornFill};
pub use rng::SimRng;
pub use sim::{SimConfig, SimStorage};
pub use trace::{Op, OpKind, TraceEntry};
