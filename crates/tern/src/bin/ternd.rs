//! `ternd`: the Calico node daemon (BIRD + confd in one process, IPv4 and IPv6).
//!
//! Environment as calico-node sets it: `NODENAME`, `DATASTORE_TYPE`, `ETCD_ENDPOINTS`,
//! `KUBECONFIG`, `CALICO_ROUTER_ID`, `CALICO_ADVERTISE_CLUSTER_IPS`, `NAMESPACE`,
//! `CALICO_ENDPOINT_STATUS_PATH_PREFIX`, `BGP_LOGSEVERITYSCREEN`; `--print-config` prints this
//! node's desired configuration and exits. See `tern::daemon`.

#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    tern::daemon::main(tern::daemon::Role::Node)
}
