//! Test support, compiled only for tests (`cfg(test)` or the `testkit`
//! feature that the other crates' tests and the benchmark turn on): an
//! independent reference fold and list ([`reference`]), a generator of event
//! streams that exercise every rule of the fold ([`adversarial`]), and the
//! table-driven specification of the fold (`common/tests/fold_spec.json`,
//! checked by the tests in [`spec`]), and a reader of the change feed's
//! server-sent events ([`sse`]).

pub mod adversarial;
pub mod reference;
#[cfg(test)]
mod spec;
pub mod sse;
