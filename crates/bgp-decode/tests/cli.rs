//! Runs the built `bgp-decode` binary over the committed captures (recorded from BIRD 1.6,
//! BIRD 2, GoBGP, FRR and ExaBGP by `tests/captures/capture.sh`), hex input, and malformed
//! UPDATEs that must get each RFC 7606 answer.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const PEERS: [&str; 5] = ["bird16", "bird2", "gobgp", "frr", "exabgp"];

fn captures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/captures")
}

/// Runs bgp-decode; returns the exit code and the JSON lines.
fn run(args: &[&str], stdin: Option<&str>) -> (i32, Vec<Value>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bgp-decode"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect();
    let code = out
        .status
        .code()
        .unwrap_or_else(|| panic!("bgp-decode died from a signal: {:?}", out.status));
    assert_ne!(
        code,
        101,
        "bgp-decode panicked: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, lines)
}

fn pcap(peer: &str) -> Vec<Value> {
    let path = captures().join(format!("{peer}.pcap"));
    let (code, lines) = run(&["--pcap", path.to_str().unwrap()], None);
    let errors: Vec<&Value> = lines.iter().filter(|l| l.get("error").is_some()).collect();
    assert!(
        errors.is_empty(),
        "{peer}: errors in a real capture: {errors:#?}"
    );
    assert_eq!(code, 0, "{peer}: exit status");
    lines
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Every (line, attributes) pair announcing `prefix`, in the NLRI field or MP_REACH_NLRI.
fn announcing<'a>(lines: &'a [Value], prefix: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| {
            strs(&l["nlri"]).contains(&prefix) || strs(&l["mp_reach"]["nlri"]).contains(&prefix)
        })
        .collect()
}

fn withdrawing<'a>(lines: &'a [Value], prefix: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| {
            strs(&l["withdrawn"]).contains(&prefix)
                || strs(&l["mp_unreach"]["withdrawn"]).contains(&prefix)
        })
        .collect()
}

fn from<'a>(lines: &'a [Value], src: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["stream"].as_str().unwrap().starts_with(src))
        .collect()
}

fn types(lines: &[Value]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for l in lines {
        *m.entry(l["type"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    m
}

fn shutdown_texts(lines: &[Value]) -> Vec<&str> {
    lines
        .iter()
        .filter_map(|l| l["shutdown_communication"].as_str())
        .collect()
}

#[test]
fn every_capture_decodes_without_error_and_has_every_message_type() {
    for peer in PEERS {
        let lines = pcap(peer);
        let t = types(&lines);
        for ty in ["OPEN", "UPDATE", "KEEPALIVE", "NOTIFICATION"] {
            assert!(
                t.get(ty).copied().unwrap_or(0) > 0,
                "{peer}: no {ty}: {t:?}"
            );
        }
        for l in &lines {
            assert!(l["stream"].as_str().unwrap().contains("->"), "{l}");
        }
        // Both End-of-RIB markers are exchanged on every capture's sessions.
        let eors: Vec<&str> = lines
            .iter()
            .filter_map(|l| l["end_of_rib"].as_str())
            .collect();
        assert!(eors.contains(&"ipv4-unicast"), "{peer}: {eors:?}");
        assert!(eors.contains(&"ipv6-unicast"), "{peer}: {eors:?}");
    }
}

#[test]
fn bird16_two_octet_session_and_add_path() {
    let lines = pcap("bird16");
    // BIRD 1.6 ran `enable as4 off`: its OPEN has no 4-octet AS capability, and BIRD 2's
    // 4-octet AS shows as AS_TRANS in My Autonomous System.
    let opens: Vec<&Value> = lines.iter().filter(|l| l["type"] == "OPEN").collect();
    let v4_from_bird16 = opens
        .iter()
        .find(|o| o["stream"].as_str().unwrap().starts_with("10.99.0.1:"))
        .unwrap();
    assert!(
        v4_from_bird16["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["name"] != "four-octet-as")
    );
    let v4_from_bird2 = opens
        .iter()
        .find(|o| o["stream"].as_str().unwrap().starts_with("10.99.0.2:"))
        .unwrap();
    assert_eq!(v4_from_bird2["my_as"], 23456);
    // The AS4_PATH merge (RFC 6793 §4.2.3) restores BIRD 2's 4-octet path.
    let merged = announcing(&lines, "10.99.20.0/24");
    assert!(!merged.is_empty());
    for l in merged {
        assert_eq!(
            l["attributes"]["as_path"][0]["asns"],
            serde_json::json!([4200000002u32, 4200000099u32])
        );
        assert_eq!(l["attributes"]["med"], 20);
    }
    let u = announcing(&lines, "10.99.12.0/23")[0];
    let a = &u["attributes"];
    assert_eq!(strs(&a["communities"]), ["65001:10", "65535:65281"]);
    assert_eq!(strs(&a["well_known_communities"]), ["NO_EXPORT"]);
    assert_eq!(strs(&a["large_communities"]), ["65001:1:10"]);
    assert_eq!(strs(&a["extended_communities"]), ["rt:65001:10"]);
    assert_eq!(a["med"], 10);
    assert_eq!(a["origin"], "igp");
    assert_eq!(a["next_hop"], "10.99.0.1");
    // IPv6 from bird6: MP_REACH_NLRI with a link-local next hop and ADD-PATH identifiers.
    let v6 = announcing(&lines, "fd00:99:10::/48");
    let v6 = v6
        .iter()
        .find(|l| l["stream"].as_str().unwrap().starts_with("[fd00:99::1]"))
        .unwrap();
    assert_eq!(v6["mp_reach"]["next_hop"], "fd00:99::1");
    assert!(
        v6["mp_reach"]["next_hop_link_local"]
            .as_str()
            .unwrap()
            .starts_with("fe80::")
    );
    assert!(v6["mp_reach"]["nlri_path_ids"].is_array());
    assert!(shutdown_texts(&lines).contains(&"bird16: maintenance window"));
    assert!(shutdown_texts(&lines).contains(&"bird2: moving bird16v6 to a new router"));
}

#[test]
fn bird2_hub_sends_many_prefixes_per_update_and_route_refresh() {
    let lines = pcap("bird2");
    // 256 /28s share one attribute set: every one reaches FRR, in few UPDATEs.
    let to_frr: Vec<&Value> = from(&lines, "10.99.0.2:")
        .into_iter()
        .filter(|l| {
            l["stream"]
                .as_str()
                .unwrap()
                .ends_with(&format!("10.99.0.4:{}", port_of(l, "10.99.0.4")))
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut updates = 0;
    for l in &to_frr {
        let n = strs(&l["nlri"]);
        if n.iter().any(|p| p.ends_with("/28")) {
            updates += 1;
        }
        seen.extend(n.into_iter().filter(|p| p.ends_with("/28")));
    }
    assert_eq!(seen.len(), 256, "all /28s announced to FRR");
    assert!(updates <= 4, "packed into few UPDATEs, got {updates}");
    // BIRD 2 advertises extended messages, GR, LLGR and ADD-PATH.
    let caps: Vec<&str> = from(&lines, "10.99.0.2:")
        .iter()
        .filter(|l| l["type"] == "OPEN")
        .flat_map(|l| l["capabilities"].as_array().unwrap())
        .filter_map(|c| c["name"].as_str())
        .collect();
    for c in [
        "extended-message",
        "graceful-restart",
        "long-lived-graceful-restart",
        "add-path",
        "four-octet-as",
        "route-refresh",
        "enhanced-route-refresh",
    ] {
        assert!(caps.contains(&c), "missing {c}");
    }
    let rr: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == "ROUTE-REFRESH")
        .collect();
    assert!(rr.iter().any(|l| l["subtype"] == "request"));
    assert!(rr.iter().any(|l| l["subtype"] == "BoRR"));
    assert!(rr.iter().any(|l| l["subtype"] == "EoRR"));
    assert!(shutdown_texts(&lines).contains(&"bird2: exabgp session retired"));
}

/// The port of `addr` in a stream label.
fn port_of(line: &Value, addr: &str) -> String {
    let s = line["stream"].as_str().unwrap();
    s.split("->")
        .find(|e| e.starts_with(addr))
        .and_then(|e| e.rsplit(':').next())
        .unwrap_or("")
        .to_owned()
}

#[test]
fn gobgp_ibgp_local_pref_add_path_and_withdrawals() {
    let lines = pcap("gobgp");
    let u = from(&lines, "10.99.0.3:")
        .into_iter()
        .find(|l| strs(&l["nlri"]).contains(&"10.99.30.0/24"))
        .unwrap();
    let a = &u["attributes"];
    assert_eq!(a["local_pref"], 300);
    assert_eq!(a["med"], 30);
    assert_eq!(a["origin"], "egp");
    assert_eq!(
        a["as_path"][0]["asns"],
        serde_json::json!([4200000030u32, 65030])
    );
    assert_eq!(strs(&a["well_known_communities"]), ["NO_ADVERTISE"]);
    assert_eq!(strs(&a["large_communities"]), ["4200000002:3:30"]);
    assert!(
        u["nlri_path_ids"].is_array(),
        "ADD-PATH negotiated with BIRD 2"
    );
    // BIRD 2's iBGP export sets LOCAL_PREF 250 on its own routes.
    let own = from(&lines, "10.99.0.2:")
        .into_iter()
        .find(|l| strs(&l["nlri"]).contains(&"10.99.20.0/24"))
        .unwrap();
    assert_eq!(own["attributes"]["local_pref"], 250);
    assert!(
        !withdrawing(
            &from(&lines, "10.99.0.3:")
                .into_iter()
                .cloned()
                .collect::<Vec<_>>(),
            "10.99.31.0/24"
        )
        .is_empty()
    );
    assert!(!withdrawing(&lines, "fd00:99:30::/48").is_empty());
    let cease = lines
        .iter()
        .find(|l| {
            l["type"] == "NOTIFICATION" && l["stream"].as_str().unwrap().starts_with("[fd00:99::3]")
        })
        .unwrap();
    assert_eq!(cease["code"], 6);
    assert_eq!(cease["code_name"], "Cease");
    assert_eq!(cease["subcode"], 2);
    assert_eq!(cease["subcode_name"], "Administrative Shutdown");
    assert_eq!(cease["shutdown_communication"], "gobgp: planned shutdown");
}

#[test]
fn frr_attributes_link_local_next_hop_and_shutdown_message() {
    let lines = pcap("frr");
    let u = from(&lines, "10.99.0.4:")
        .into_iter()
        .find(|l| strs(&l["nlri"]).contains(&"10.99.40.0/24"))
        .unwrap();
    let a = &u["attributes"];
    assert_eq!(a["origin"], "incomplete");
    assert_eq!(a["med"], 40);
    assert_eq!(a["as_path"][0]["asns"], serde_json::json!([65004]));
    assert_eq!(strs(&a["communities"]), ["65004:40", "65535:0"]);
    assert_eq!(strs(&a["well_known_communities"]), ["GRACEFUL_SHUTDOWN"]);
    assert_eq!(strs(&a["large_communities"]), ["65004:4:40"]);
    assert_eq!(strs(&a["extended_communities"]), ["rt:65004:40"]);
    let v6 = from(&lines, "[fd00:99::4]")
        .into_iter()
        .find(|l| strs(&l["mp_reach"]["nlri"]).contains(&"fd00:99:40::/48"))
        .unwrap();
    assert_eq!(v6["mp_reach"]["family"], "ipv6-unicast");
    // FRR without zebra knows no interface addresses: a global next hop only.
    assert_eq!(v6["mp_reach"]["next_hop"], "fd00:99::4");
    assert!(v6["mp_reach"].get("next_hop_link_local").is_none());
    // BIRD 2 adds its link-local address for the directly connected peer (RFC 2545 §3).
    let to_frr = from(&lines, "[fd00:99::2]")
        .into_iter()
        .find(|l| l["mp_reach"]["nlri"].is_array())
        .unwrap();
    assert_eq!(to_frr["mp_reach"]["next_hop"], "fd00:99::2");
    assert!(
        to_frr["mp_reach"]["next_hop_link_local"]
            .as_str()
            .unwrap()
            .starts_with("fe80::")
    );
    assert_eq!(strs(&v6["attributes"]["communities"]), ["65004:60"]);
    assert!(
        !withdrawing(
            &from(&lines, "10.99.0.4:")
                .into_iter()
                .cloned()
                .collect::<Vec<_>>(),
            "10.99.41.0/24"
        )
        .is_empty()
    );
    assert!(shutdown_texts(&lines).contains(&"frr: link maintenance"));
}

#[test]
fn exabgp_aggregator_unknown_attribute_and_ipv6_over_ipv4() {
    let lines = pcap("exabgp");
    let mine = from(&lines, "10.99.0.5:");
    let u = mine
        .iter()
        .find(|l| strs(&l["nlri"]).contains(&"10.99.50.0/24"))
        .unwrap();
    let a = &u["attributes"];
    assert_eq!(a["atomic_aggregate"], true);
    assert_eq!(a["aggregator"]["asn"], 65005);
    assert_eq!(a["aggregator"]["address"], "10.99.0.5");
    assert_eq!(
        a["as_path"][0]["asns"],
        serde_json::json!([65005, 4200000050u32])
    );
    assert_eq!(strs(&a["communities"]), ["65005:50", "65535:65281"]);
    assert_eq!(strs(&a["extended_communities"]), ["rt:65005:50"]);
    let u = mine
        .iter()
        .find(|l| strs(&l["nlri"]).contains(&"10.99.51.0/24"))
        .unwrap();
    assert_eq!(u["attributes"]["unknown"][0]["type_code"], 99);
    assert_eq!(u["attributes"]["unknown"][0]["value"], "deadbeef");
    let v6 = mine
        .iter()
        .find(|l| strs(&l["mp_reach"]["nlri"]).contains(&"fd00:99:50::/48"))
        .unwrap();
    assert_eq!(v6["mp_reach"]["next_hop"], "fd00:99::5");
}

/// The `.bin` streams decode with `--raw` to exactly what `--pcap` printed for the same
/// stream, given the context flags the OPENs negotiated.
#[test]
fn raw_streams_match_the_pcap_decoding() {
    let mut checked = 0;
    for peer in PEERS {
        let lines = pcap(peer);
        let mut by_stream: HashMap<String, Vec<Value>> = HashMap::new();
        for l in &lines {
            by_stream
                .entry(l["stream"].as_str().unwrap().to_owned())
                .or_default()
                .push(l.clone());
        }
        let dir = captures().join(peer);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let label = by_stream
                .keys()
                .find(|k| name.ends_with(&sanitize(k)))
                .unwrap_or_else(|| panic!("{name}: no stream in the pcap"))
                .clone();
            let expected = &by_stream[&label];
            let reverse = reverse_label(&label);
            let flags = context_flags(
                expected,
                by_stream.get(&reverse).map(Vec::as_slice).unwrap_or(&[]),
            );
            let mut args: Vec<&str> = vec!["--raw", path.to_str().unwrap()];
            args.extend(flags.iter().map(String::as_str));
            let (code, raw) = run(&args, None);
            assert_eq!(code, 0, "{name} {flags:?}");
            assert_eq!(raw.len(), expected.len(), "{name}");
            for (r, e) in raw.iter().zip(expected) {
                let mut e = e.clone();
                let obj = e.as_object_mut().unwrap();
                obj.remove("stream");
                obj.remove("offset");
                assert_eq!(r, &e, "{name}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} .bin files");
}

fn sanitize(label: &str) -> String {
    label
        .replace("->", "_")
        .replace(['[', ']'], "")
        .replace(':', "-")
}

fn reverse_label(label: &str) -> String {
    let (a, b) = label.split_once("->").unwrap();
    format!("{b}->{a}")
}

/// The command-line context for messages of a stream, from its OPEN and the reverse one's.
fn context_flags(stream: &[Value], reverse: &[Value]) -> Vec<String> {
    let caps = |lines: &[Value]| -> Vec<Value> {
        lines
            .iter()
            .find(|l| l["type"] == "OPEN")
            .map(|o| o["capabilities"].as_array().unwrap().clone())
            .unwrap_or_default()
    };
    let (mine, theirs) = (caps(stream), caps(reverse));
    let has = |c: &[Value], n: &str| c.iter().any(|x| x["name"] == n);
    let mut flags = Vec::new();
    if mine.is_empty() || theirs.is_empty() {
        return flags;
    }
    if !(has(&mine, "four-octet-as") && has(&theirs, "four-octet-as")) {
        flags.push("--as2".to_owned());
    }
    if has(&mine, "extended-message") && has(&theirs, "extended-message") {
        flags.push("--extended-messages".to_owned());
    }
    let mode = |c: &[Value], fam: &str| -> String {
        c.iter()
            .filter(|x| x["name"] == "add-path")
            .flat_map(|x| x["families"].as_array().unwrap().clone())
            .find(|f| f["family"] == fam)
            .map(|f| f["mode"].as_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let mut add = Vec::new();
    for fam in ["ipv4-unicast", "ipv6-unicast"] {
        if mode(&mine, fam).contains("send")
            && (mode(&theirs, fam) == "receive" || mode(&theirs, fam) == "send-receive")
        {
            add.push(fam);
        }
    }
    if !add.is_empty() {
        flags.push("--add-path".to_owned());
        flags.push(add.join(","));
    }
    flags
}

// ===== hex input =====

const KEEPALIVE: &str = "ffffffffffffffffffffffffffffffff001304";

#[test]
fn hex_argument_with_separators_and_stdin() {
    let spaced = "ff:ff:ff:ff:ff:ff:ff:ff ff ff ff ff ff ff ff ff 00 13 04";
    let (code, lines) = run(&[spaced], None);
    assert_eq!(code, 0);
    assert_eq!(
        lines,
        vec![serde_json::json!({"type": "KEEPALIVE", "length": 19})]
    );
    let (code, lines) = run(&["-"], Some(&format!("{KEEPALIVE}\n{KEEPALIVE}\n")));
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 2);
    let (code, lines) = run(&["zz"], None);
    assert_eq!(code, 1);
    assert!(lines.is_empty());
}

/// Builds an UPDATE from its three fields.
fn update(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> String {
    let len = 19 + 2 + withdrawn.len() + 2 + attrs.len() + nlri.len();
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&(len as u16).to_be_bytes());
    m.push(2);
    m.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    m.extend_from_slice(withdrawn);
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(attrs);
    m.extend_from_slice(nlri);
    m.iter().map(|b| format!("{b:02x}")).collect()
}

const ORIGIN_IGP: [u8; 4] = [0x40, 1, 1, 0];
const AS_PATH_65001: [u8; 9] = [0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9];
const NEXT_HOP: [u8; 7] = [0x40, 3, 4, 10, 99, 0, 1];
const NLRI_10_99_1: [u8; 4] = [24, 10, 99, 1];

fn attrs(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn well_formed_update_from_hex() {
    let med = [0x80, 4, 4, 0, 0, 0, 7];
    let comm = [0xc0, 8, 8, 0xfd, 0xe9, 0, 10, 0xff, 0xff, 0xff, 0x01];
    let hex = update(
        &[],
        &attrs(&[&ORIGIN_IGP, &AS_PATH_65001, &NEXT_HOP, &med, &comm]),
        &NLRI_10_99_1,
    );
    let (code, lines) = run(&[&hex], None);
    assert_eq!(code, 0, "{lines:?}");
    let l = &lines[0];
    assert_eq!(l["type"], "UPDATE");
    assert_eq!(strs(&l["nlri"]), ["10.99.1.0/24"]);
    assert_eq!(l["attributes"]["origin"], "igp");
    assert_eq!(
        l["attributes"]["as_path"][0]["asns"],
        serde_json::json!([65001])
    );
    assert_eq!(l["attributes"]["next_hop"], "10.99.0.1");
    assert_eq!(l["attributes"]["med"], 7);
    assert_eq!(
        strs(&l["attributes"]["communities"]),
        ["65001:10", "65535:65281"]
    );
    assert_eq!(
        strs(&l["attributes"]["well_known_communities"]),
        ["NO_EXPORT"]
    );
    // The same bytes on a 2-octet session read the AS_PATH as 2-octet ASes: 6 octets of a
    // 1-AS segment no longer fit, so the context really changes the decoding.
    let (code2, lines2) = run(&["--as2", &hex], None);
    assert_eq!(code2, 1);
    assert!(lines2[0].get("error").is_some());
}

#[test]
fn add_path_flag_reads_path_identifiers() {
    let nlri = [0, 0, 0, 9, 24, 10, 99, 1];
    let hex = update(
        &[],
        &attrs(&[&ORIGIN_IGP, &AS_PATH_65001, &NEXT_HOP]),
        &nlri,
    );
    let (code, lines) = run(&["--add-path", "ipv4-unicast,ipv6-unicast", &hex], None);
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(strs(&lines[0]["nlri"]), ["10.99.1.0/24"]);
    assert_eq!(lines[0]["nlri_path_ids"], serde_json::json!([9]));
}

#[test]
fn extended_messages_flag_allows_long_updates() {
    // 1500 /32s: 7500 octets of NLRI, over 4096.
    let mut nlri = Vec::new();
    for i in 0..1500u32 {
        nlri.push(32);
        nlri.extend_from_slice(&(0x0a63_0000 + i).to_be_bytes());
    }
    let hex = update(
        &[],
        &attrs(&[&ORIGIN_IGP, &AS_PATH_65001, &NEXT_HOP]),
        &nlri,
    );
    let (code, lines) = run(&["--extended-messages", &hex], None);
    assert_eq!(code, 0);
    assert_eq!(strs(&lines[0]["nlri"]).len(), 1500);
    let (code, lines) = run(&[&hex], None);
    assert_eq!(code, 1);
    assert_eq!(lines[0]["error"]["action"], "notification");
    assert_eq!(lines[0]["error"]["code"], 1);
    assert_eq!(lines[0]["error"]["subcode"], 2);
    assert_eq!(lines[0]["error"]["subcode_name"], "Bad Message Length");
}

// ===== RFC 7606 answers =====

#[test]
fn invalid_origin_is_treat_as_withdraw() {
    let bad_origin = [0x40, 1, 1, 5];
    let hex = update(
        &[],
        &attrs(&[&bad_origin, &AS_PATH_65001, &NEXT_HOP]),
        &NLRI_10_99_1,
    );
    let (code, lines) = run(&[&hex], None);
    assert_eq!(code, 1);
    let e = &lines[0]["error"];
    assert_eq!(lines[0]["type"], "UPDATE");
    assert_eq!(e["action"], "treat-as-withdraw");
    assert_eq!(strs(&e["withdraw"]), ["10.99.1.0/24"]);
    assert_eq!(e["code"], 3);
    assert_eq!(e["subcode"], 6);
    assert_eq!(e["subcode_name"], "Invalid ORIGIN Attribute");
    // What could be decoded is still printed.
    assert_eq!(lines[0]["attributes"]["next_hop"], "10.99.0.1");
}

#[test]
fn bad_aggregator_is_attribute_discard() {
    let aggregator_too_short = [0xc0, 7, 5, 0, 0, 0xfd, 0xe9, 10];
    let hex = update(
        &[],
        &attrs(&[
            &ORIGIN_IGP,
            &AS_PATH_65001,
            &NEXT_HOP,
            &aggregator_too_short,
        ]),
        &NLRI_10_99_1,
    );
    let (code, lines) = run(&[&hex], None);
    assert_eq!(code, 1);
    let e = &lines[0]["error"];
    assert_eq!(e["action"], "attribute-discard");
    assert_eq!(e["attribute"], "AGGREGATOR");
    assert_eq!(
        strs(&lines[0]["nlri"]),
        ["10.99.1.0/24"],
        "the route itself stays"
    );
    assert!(lines[0]["attributes"].get("aggregator").is_none());
}

#[test]
fn withdrawn_length_overrun_is_a_notification() {
    // Withdrawn Routes Length says 200 octets; the message has 4.
    let mut hex = update(&[24, 10, 99, 1], &[], &[]);
    hex.replace_range(38..42, "00c8");
    let (code, lines) = run(&[&hex], None);
    assert_eq!(code, 1);
    let e = &lines[0]["error"];
    assert_eq!(lines[0]["type"], "UPDATE");
    assert_eq!(e["action"], "notification");
    assert_eq!(e["code"], 3);
    assert_eq!(e["code_name"], "UPDATE Message Error");
    assert_eq!(e["subcode"], 1);
    assert_eq!(e["subcode_name"], "Malformed Attribute List");
}

#[test]
fn bad_marker_loses_sync_and_truncation_is_reported() {
    let (code, lines) = run(&["00ffffffffffffffffffffffffffffff001304"], None);
    assert_eq!(code, 1);
    assert_eq!(lines[0]["error"]["code"], 1);
    assert_eq!(
        lines[0]["error"]["subcode_name"],
        "Connection Not Synchronized"
    );
    let (code, lines) = run(&[&KEEPALIVE[..30]], None);
    assert_eq!(code, 1);
    assert!(
        lines[0]["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("ends inside")
    );
    // A well-formed message followed by a cut one: the first is still printed.
    let (code, lines) = run(&[&format!("{KEEPALIVE}{}", &KEEPALIVE[..36])], None);
    assert_eq!(code, 1);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["type"], "KEEPALIVE");
}

#[test]
fn a_well_formed_notification_is_not_an_error() {
    // Cease / Administrative Shutdown with the RFC 9003 communication "bye".
    let hex = "ffffffffffffffffffffffffffffffff0019030602036279 65";
    let (code, lines) = run(&[hex], None);
    assert_eq!(code, 0, "{lines:?}");
    let l = &lines[0];
    assert_eq!(l["type"], "NOTIFICATION");
    assert_eq!(l["code"], 6);
    assert_eq!(l["code_name"], "Cease");
    assert_eq!(l["subcode"], 2);
    assert_eq!(l["subcode_name"], "Administrative Shutdown");
    assert_eq!(l["shutdown_communication"], "bye");
    assert!(l.get("error").is_none());
}

#[test]
fn unreadable_files_fail_cleanly() {
    let (code, lines) = run(&["--pcap", "/nonexistent/capture.pcap"], None);
    assert_eq!(code, 1);
    assert!(lines.is_empty());
    let dir = std::env::temp_dir().join(format!("bgp-decode-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture").unwrap();
    let (code, _) = run(&["--pcap", junk.to_str().unwrap()], None);
    assert_eq!(code, 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_well_known_attributes_list_every_error_and_report_the_first() {
    let hex = update(&[], &[], &NLRI_10_99_1);
    let (code, lines) = run(&[&hex], None);
    assert_eq!(code, 1);
    let l = &lines[0];
    assert_eq!(l["error"]["action"], "treat-as-withdraw");
    assert_eq!(l["error"]["subcode_name"], "Missing Well-known Attribute");
    assert_eq!(
        l["error"]["data"], "01",
        "ORIGIN (type 1) is reported first"
    );
    let all: Vec<&str> = l["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"].as_str().unwrap())
        .collect();
    assert_eq!(all, ["01", "02", "03"]);
    assert_eq!(strs(&l["error"]["withdraw"]), ["10.99.1.0/24"]);
}
