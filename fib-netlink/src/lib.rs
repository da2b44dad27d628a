//! # fib-netlink — Tern's routes in the kernel
//!
//! **Owns:** programming kernel routes over rtnetlink (unicast, `onlink`, ECMP multipath,
//! blackhole/unreachable/prohibit; IPv4 and IPv6; batched), reconciling the kernel with the
//! desired set, restoring routes someone else changed, and learning routes of other
//! protocols, interface addresses and links as events.
//!
//! **Must not know:** BGP or Calico. It speaks of prefixes, next hops, devices, tables,
//! metrics and protocols only.
