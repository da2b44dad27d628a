//! The RIB's policy evaluator (`rib::Policies::evaluate`) over arbitrary policies and routes.
//!
//! Input: a JSON object of named `tern_config::policy::Policy` values (the language Calico's
//! filters are compiled into), a NUL byte, then bytes that build a route (prefix of either
//! family, BGP attributes, kernel metric, interface) and the evaluation context. Every policy
//! is evaluated as import, export and kernel policy. Nothing may panic — not unknown names,
//! call cycles (bounded by `MAX_CALL_DEPTH`), nor any attribute arithmetic — and evaluation is
//! deterministic: the same route and context give the same outcome and attributes twice.
#![no_main]
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use bgp_wire::{AsPath, AsSegment, Community, LargeCommunity, NextHop, PathAttributes, Prefix};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use rib::RouteAttrs;
use rib::policy::{Candidate, Context, Origin, Policies};
use tern_config::policy::{Policy, SessionType};

fn prefix(u: &mut Unstructured<'_>) -> Result<Prefix> {
    Ok(if u.arbitrary()? {
        let len: u8 = u.int_in_range(0..=32)?;
        Prefix::new(IpAddr::V4(Ipv4Addr::from(u.arbitrary::<u32>()?)), len)
    } else {
        let len: u8 = u.int_in_range(0..=128)?;
        Prefix::new(IpAddr::V6(Ipv6Addr::from(u.arbitrary::<u128>()?)), len)
    }
    .unwrap_or(Prefix::V4 {
        addr: Ipv4Addr::UNSPECIFIED,
        len: 0,
    }))
}

fn attrs(u: &mut Unstructured<'_>, prefix: &Prefix) -> Result<RouteAttrs> {
    let mut bgp = PathAttributes {
        origin: Some(bgp_wire::Origin::from(u.int_in_range(0u8..=3)?)),
        med: u.arbitrary()?,
        local_pref: u.arbitrary()?,
        atomic_aggregate: u.arbitrary()?,
        ..PathAttributes::default()
    };
    if u.arbitrary()? {
        let mut segments = Vec::new();
        for _ in 0..u.int_in_range(0u8..=4)? {
            let n: usize = u.int_in_range(0..=8)?;
            let mut asns = Vec::with_capacity(n);
            for _ in 0..n {
                asns.push(u.arbitrary()?);
            }
            segments.push(AsSegment {
                kind: bgp_wire::SegmentType::from(u.int_in_range(1u8..=5)?),
                asns: asns.into(),
            });
        }
        bgp.as_path = Some(AsPath {
            segments: segments.into(),
        });
    }
    match prefix {
        Prefix::V4 { .. } if u.arbitrary()? => {
            bgp.next_hop = Some(Ipv4Addr::from(u.arbitrary::<u32>()?));
        }
        _ if u.arbitrary()? => {
            bgp.mp_next_hop = Some(NextHop::V6 {
                global: Ipv6Addr::from(u.arbitrary::<u128>()?),
                link_local: None,
            });
        }
        _ => {}
    }
    for _ in 0..u.int_in_range(0u8..=4)? {
        bgp.communities.push(Community(u.arbitrary()?));
    }
    for _ in 0..u.int_in_range(0u8..=2)? {
        bgp.large_communities.push(LargeCommunity {
            global_admin: u.arbitrary()?,
            local_data_1: u.arbitrary()?,
            local_data_2: u.arbitrary()?,
        });
    }
    let mut a = RouteAttrs::bgp(bgp);
    a.krt_metric = u.arbitrary()?;
    if u.arbitrary()? {
        let name: String = u.arbitrary()?;
        a.ifname = Some(Arc::from(name.as_str()));
    }
    a.preference = u.arbitrary()?;
    Ok(a)
}

fn context(u: &mut Unstructured<'_>) -> Result<Context> {
    Ok(Context {
        session: *u.choose(&[None, Some(SessionType::Ibgp), Some(SessionType::Ebgp)])?,
        origin: *u.choose(&[
            Origin::Ibgp,
            Origin::Ebgp,
            Origin::Kernel,
            Origin::Static,
            Origin::Direct,
        ])?,
        neighbour: if u.arbitrary()? {
            Some(IpAddr::V4(Ipv4Addr::from(u.arbitrary::<u32>()?)))
        } else {
            None
        },
        local_address: if u.arbitrary()? {
            Some(IpAddr::V6(Ipv6Addr::from(u.arbitrary::<u128>()?)))
        } else {
            None
        },
    })
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (json, rest) = data.split_at(split);
    let Ok(map) = serde_json::from_slice::<BTreeMap<String, Policy>>(json) else {
        return;
    };
    let policies = Policies::new(map.clone());
    let mut u = Unstructured::new(rest.get(1..).unwrap_or_default());
    let Ok(p) = prefix(&mut u) else { return };
    let Ok(base) = attrs(&mut u, &p) else { return };
    let Ok(ctx) = context(&mut u) else { return };
    let names = map
        .keys()
        .map(String::as_str)
        .chain(["all", "none", "no such policy"]);
    for name in names {
        let mut first = Candidate::new(p, &base);
        let a = policies.evaluate(name, &mut first, &ctx);
        let mut second = Candidate::new(p, &base);
        let b = policies.evaluate(name, &mut second, &ctx);
        assert_eq!(a, b, "policy {name} is not deterministic");
        assert_eq!(first.into_modified(), second.into_modified());
    }
});
