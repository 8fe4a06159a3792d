//! The power-loss store on a real FUSE mount (root and /dev/fuse): what was fsynced survives a
//! power loss, what was only written is gone, and the bytes discarded are counted.

use std::io::{Read, Seek, SeekFrom, Write};

use aivo_load::durable_fs::{DurableStore, PowerLoss};

#[test]
#[cfg_attr(aivo_not_root, ignore = "needs root for a FUSE mount")]
fn a_power_loss_keeps_what_was_fsynced_and_loses_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backing = dir.path().join("backing");
    let mount = dir.path().join("store");
    let store = DurableStore::mount(&backing, &mount).expect("mount");

    // A message block written and fsynced, then appended to without an fsync.
    std::fs::create_dir_all(mount.join("jetstream/FOCUS/msgs")).expect("mkdir");
    let block = mount.join("jetstream/FOCUS/msgs/1.blk");
    let mut file = std::fs::File::create(&block).expect("create");
    file.write_all(b"acked and synced;").expect("write");
    file.sync_all().expect("fsync");
    file.write_all(b" acked, in the page cache only")
        .expect("write");
    drop(file);
    // An index file rewritten in place (an overwrite of durable bytes), never fsynced again.
    let index = mount.join("jetstream/FOCUS/msgs/1.idx");
    std::fs::write(&index, b"0000").expect("write index");
    std::fs::File::open(&index)
        .and_then(|f| f.sync_all())
        .expect("fsync index");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&index)
        .expect("open");
    file.seek(SeekFrom::Start(1)).expect("seek");
    file.write_all(b"99").expect("overwrite");
    drop(file);
    // A new file never fsynced.
    std::fs::write(mount.join("jetstream/FOCUS/msgs/2.blk"), b"never synced").expect("write");
    // Reads go through the mount.
    let mut text = String::new();
    std::fs::File::open(&block)
        .and_then(|mut f| f.read_to_string(&mut text))
        .expect("read");
    assert_eq!(text, "acked and synced; acked, in the page cache only");
    assert_eq!(store.pending(), 30 + 2 + 12);

    let loss = store.power_loss().expect("power loss");
    assert_eq!(
        loss,
        PowerLoss {
            files_rolled_back: 2,
            files_removed: 1,
            bytes_discarded: 30 + 2 + 12,
        }
    );
    assert_eq!(std::fs::read(&block).expect("block"), b"acked and synced;");
    assert_eq!(std::fs::read(&index).expect("index"), b"0000");
    assert!(!mount.join("jetstream/FOCUS/msgs/2.blk").exists());
    // The backing directory holds the same: the loss is on disk, not only in the mount's view.
    assert_eq!(
        std::fs::read(backing.join("jetstream/FOCUS/msgs/1.blk")).expect("backing"),
        b"acked and synced;"
    );
    store.unmount();
    assert!(std::fs::read_dir(&mount)
        .expect("mountpoint")
        .next()
        .is_none());
}

/// A single JetStream server with its store on the mount, killed after `count` acked messages,
/// power-lost, and started again: what the server still holds.
async fn nats_on_the_store_after_a_power_loss(sync: &str, count: u64) -> (PowerLoss, Option<u64>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let backing = dir.path().join("backing");
    let mount = dir.path().join("store");
    let store = DurableStore::mount(&backing, &mount).expect("mount");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let config = dir.path().join("nats.conf");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\nserver_name: solo\njetstream {{\n  store_dir: \"{}\"\n  sync_interval: {sync}\n}}\n",
            mount.display()
        ),
    )
    .expect("config");
    let binary = aivo_load::cluster::binary::locate(None).expect("nats-server");
    let start = || {
        std::process::Command::new(&binary)
            .arg("-c")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("nats.log")).expect("log"))
            .spawn()
            .expect("spawn nats-server")
    };
    let url = format!("nats://127.0.0.1:{port}");
    let connect = || async {
        crate::support::wait_for(
            "nats-server",
            std::time::Duration::from_secs(20),
            || async { async_nats::connect(&url).await.ok() },
        )
        .await
    };
    let mut server = start();
    let client = connect().await;
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "FOCUS".into(),
        subjects: vec!["focus.>".into()],
        ..Default::default()
    })
    .await
    .expect("stream");
    for i in 0..count {
        js.publish("focus.x", format!("event {i}").into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
    server.kill().expect("SIGKILL");
    server.wait().expect("reap");
    let loss = store.power_loss().expect("power loss");
    let mut server = start();
    let client = connect().await;
    let js = async_nats::jetstream::new(client);
    let held = match js.get_stream("FOCUS").await {
        Ok(mut stream) => Some(stream.info().await.expect("info").state.messages),
        Err(_) => None,
    };
    let log = std::fs::read_to_string(dir.path().join("nats.log")).unwrap_or_default();
    server.kill().ok();
    server.wait().ok();
    store.unmount();
    assert!(
        !log.contains("not a directory"),
        "nats-server on the mount: {log}"
    );
    (loss, held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(aivo_not_root, ignore = "needs root for a FUSE mount")]
async fn nats_server_on_the_store_keeps_synced_messages_and_loses_unsynced_ones() {
    let (loss, held) = nats_on_the_store_after_a_power_loss("always", 500).await;
    assert_eq!(loss.bytes_discarded, 0, "{loss:?}");
    assert_eq!(held, Some(500));
    let (loss, held) = nats_on_the_store_after_a_power_loss("\"2m\"", 500).await;
    assert!(loss.bytes_discarded > 0, "{loss:?}");
    assert!(held.unwrap_or(0) < 500, "{held:?} after {loss:?}");
    eprintln!("default sync: {loss:?}, the restarted server holds {held:?} of 500");
}
