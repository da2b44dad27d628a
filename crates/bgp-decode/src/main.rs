//! `bgp-decode`: prints one JSON object per BGP message.
fn main() {}
