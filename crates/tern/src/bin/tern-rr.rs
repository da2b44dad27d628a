//! `tern-rr`: the standalone route reflector — the same engine as `ternd`, without a FIB
//! unless `--fib` is given. Started like ternd (same environment and flags) for a Calico node
//! with a `routeReflectorClusterID`, or with `--config FILE` as a generic route reflector.

#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    tern::daemon::main(tern::daemon::Role::RouteReflector)
}
