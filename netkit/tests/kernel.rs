//! Privileged tests against the real kernel, each inside namespaces it makes (removed on drop).

use std::net::Ipv4Addr;

use keel_netkit::testing::{TestNetns, veth_between};
use keel_netkit::{Route, netns};

#[tokio::test]
async fn veth_address_route_neighbour_and_fdb_round_trip() {
    let a = TestNetns::new("nk-a");
    let b = TestNetns::new("nk-b");
    a.lo_up().await;
    veth_between(
        &a,
        "va",
        Some((Ipv4Addr::new(10, 99, 0, 1), 24)),
        &b,
        "vb",
        Some((Ipv4Addr::new(10, 99, 0, 2), 24)),
    )
    .await;
    let na = a.netlink();
    let va = na.link_by_name("va").await.unwrap().expect("va exists");
    assert_eq!(va.kind.as_deref(), Some("veth"));
    assert!(va.up);
    assert!(
        na.link_by_name("vb").await.unwrap().is_none(),
        "peer must live in the other namespace"
    );
    assert!(b.netlink().link_by_name("vb").await.unwrap().is_some());
    assert!(
        na.addrs()
            .await
            .unwrap()
            .iter()
            .any(|x| x.ip == Ipv4Addr::new(10, 99, 0, 1) && x.prefix == 24)
    );

    na.add_addr(va.index, Ipv4Addr::new(10, 98, 0, 1), 24).await.unwrap();
    na.del_addr(va.index, Ipv4Addr::new(10, 98, 0, 1), 24).await.unwrap();
    assert!(
        !na.addrs()
            .await
            .unwrap()
            .iter()
            .any(|x| x.ip == Ipv4Addr::new(10, 98, 0, 1))
    );

    let r = Route {
        dst: Ipv4Addr::new(10, 42, 7, 0),
        prefix: 24,
        gateway: Some(Ipv4Addr::new(10, 99, 0, 2)),
        oif: Some(va.index),
        onlink: false,
        protocol: 77,
        link_scope: false,
    };
    na.add_route(&r, false).await.unwrap();
    let err = na.add_route(&r, false).await.unwrap_err();
    assert!(err.is_exists(), "second add must be EEXIST, got {err}");
    na.add_route(&r, true).await.unwrap();
    let mine: Vec<_> = na
        .routes()
        .await
        .unwrap()
        .into_iter()
        .filter(|x| x.protocol == 77)
        .collect();
    assert_eq!(mine, vec![r]);
    na.del_route(&r).await.unwrap();
    assert!(na.routes().await.unwrap().iter().all(|x| x.protocol != 77));

    let mac = [0x0e, 0, 0, 0, 0, 9];
    na.add_neigh(va.index, Ipv4Addr::new(10, 99, 0, 9), &mac, false)
        .await
        .unwrap();
    let n = na.neighbours(va.index).await.unwrap();
    assert!(
        n.iter()
            .any(|x| x.ip == Some(Ipv4Addr::new(10, 99, 0, 9)) && x.mac == mac && x.permanent),
        "{n:?}"
    );
    na.del_neigh(va.index, Ipv4Addr::new(10, 99, 0, 9)).await.unwrap();

    na.add_vxlan(
        "vx0",
        42,
        Ipv4Addr::new(10, 99, 0, 1),
        4789,
        1450,
        [0x0e, 1, 2, 3, 4, 5],
    )
    .await
    .unwrap();
    let vx = na.link_by_name("vx0").await.unwrap().expect("vxlan exists");
    assert_eq!(
        (vx.kind.as_deref(), vx.mtu, vx.mac.as_slice()),
        (Some("vxlan"), 1450, &[0x0e, 1, 2, 3, 4, 5][..])
    );
    na.add_fdb(vx.index, &mac, Ipv4Addr::new(10, 99, 0, 2)).await.unwrap();
    let fdb = na.fdb(vx.index).await.unwrap();
    assert!(
        fdb.iter()
            .any(|x| x.mac == mac && x.ip == Some(Ipv4Addr::new(10, 99, 0, 2))),
        "{fdb:?}"
    );
    na.del_fdb(vx.index, &mac, Ipv4Addr::new(10, 99, 0, 2)).await.unwrap();
    assert!(!na.fdb(vx.index).await.unwrap().iter().any(|x| x.mac == mac));
    na.del_link(vx.index).await.unwrap();
    assert!(na.link_by_name("vx0").await.unwrap().is_none());

    // A socket made inside `b` talks to `a` over the veth.
    let listener = b.run(|| std::net::TcpListener::bind("10.99.0.2:0").unwrap());
    let port = listener.local_addr().unwrap().port();
    let client = a.run(move || std::net::TcpStream::connect(("10.99.0.2", port)));
    assert!(client.is_ok(), "connect across the veth: {client:?}");
}

#[test]
fn dropping_a_namespace_removes_its_name() {
    let path = {
        let ns = TestNetns::new("nk-drop");
        assert!(ns.path().exists());
        ns.path().to_path_buf()
    };
    assert!(!path.exists());
    assert!(netns::open(&path).is_err());
}
