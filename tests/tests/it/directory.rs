//! The federation directory: the CA signs who the members are, where and with which key;
//! a querier asks every institution it lists by name, refuses a directory that was edited,
//! signed by another CA or expired, and refuses a member answering with an unlisted key.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use suyuan_node::clock;
use suyuan_node::evidence::directory;
use suyuan_node::node_dir::identity::{self, Role};
use suyuan_node::node_dir::revocation;
use suyuan_node::query::{self, QueryOptions};
use suyuan_protocol::psi::QueryMode;
use suyuan_tests::fed::{Federation, import, start};
use suyuan_tests::write_text;

const HOLDER: &str =
    "[policy]\nmin_query_keys = 1\n[policy.allow]\npolice = [\"count\", \"matches\"]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_directory_names_the_institutions_and_pins_their_keys() {
    let fed = Federation::new();
    let bank = fed.node("bank", Role::Institution, HOLDER);
    let telecom = fed.node("telecom", Role::Institution, HOLDER);
    let police = fed.node("police", Role::Police, "[network]\ntimeout_secs = 5\n");
    write_text(
        &fed.path("list.csv"),
        "mobile\n13900000001\n13900000002\n",
        false,
    );
    write_text(&fed.path("dump.csv"), "mobile\n13900000002\n", false);
    import(&bank, &fed.path("list.csv"));
    import(&telecom, &fed.path("list.csv"));
    let (b, t) = (start(&bank), start(&telecom));
    let members = vec![
        ("bank".to_string(), b.addr.to_string()),
        ("telecom".to_string(), t.addr.to_string()),
        ("police".to_string(), "127.0.0.1:9".to_string()),
    ];
    let path = fed.path("federation.toml");
    let signed = directory::ca_directory(&fed.ca, &members, 90, &path).unwrap();
    assert_eq!(signed.number, 1);
    let ca = CertificateDer::from_pem_file(fed.ca.join("ca.crt")).unwrap();
    let now = clock::now_unix();
    let dir = directory::load(&path, &ca, now).unwrap();
    assert_eq!(dir, signed);
    let peers = query::resolve_peers(&[], Some(&dir), true).unwrap();
    let names: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["bank", "telecom"], "institutions only");
    let ask = |peers| QueryOptions {
        input_options: Default::default(),
        case: Some("d-1".into()),
        ..QueryOptions::new(&police, &fed.path("dump.csv"), peers, QueryMode::Count)
    };
    let report = query::run(&ask(peers), suyuan_node::Silent).await.unwrap();
    assert!(
        report.peers.iter().all(|p| p.error.is_none()),
        "{:?}",
        report.peers
    );

    // An edited directory, another CA's, or an expired one is refused with the reason.
    let text = std::fs::read_to_string(&path).unwrap();
    let port = b.addr.port().to_string();
    std::fs::write(fed.path("edited.toml"), text.replacen(&port, "1", 1)).unwrap();
    let e = directory::load(&fed.path("edited.toml"), &ca, now)
        .unwrap_err()
        .to_string();
    assert!(e.contains("refused, its signature does not verify"), "{e}");
    let other = Federation::new();
    let other_ca = CertificateDer::from_pem_file(other.ca.join("ca.crt")).unwrap();
    let e = directory::load(&path, &other_ca, now)
        .unwrap_err()
        .to_string();
    assert!(e.ends_with("not signed by this federation's CA"), "{e}");
    let e = directory::load(&path, &ca, dir.expires)
        .unwrap_err()
        .to_string();
    assert!(e.contains("directory number 1 expired on"), "{e}");
    let e = query::resolve_peers(&["shop".into()], Some(&dir), false)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "shop is not in the federation directory (number 1)");

    // A new certificate (and key) issued under the bank's name: the next directory pins that
    // key, and the running bank, still on its old key, is not queried under it.
    identity::ca_issue(&fed.ca, "bank", Role::Institution, &fed.path("bank-new")).unwrap();
    let path2 = fed.path("federation-2.toml");
    let dir2 = directory::ca_directory(&fed.ca, &members[..1], 90, &path2).unwrap();
    assert_eq!(dir2.number, 2);
    let peers = query::resolve_peers(&["bank".into()], Some(&dir2), false).unwrap();
    let report = query::run(&ask(peers), suyuan_node::Silent).await.unwrap();
    assert_eq!(
        report.peers[0].error.as_deref(),
        Some("bank answered with another key than the federation directory lists; not queried")
    );
    // A revoked member is not listed.
    revocation::ca_revoke(&fed.ca, "telecom", None, "left", 30).unwrap();
    let e = directory::ca_directory(&fed.ca, &members[1..2], 90, &fed.path("x.toml"))
        .unwrap_err()
        .to_string();
    assert_eq!(e, "telecom is revoked: not listed");
    b.stop().await;
    t.stop().await;
}
