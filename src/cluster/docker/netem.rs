//! Route-link faults on the docker backend without pulling an image: host tools (`tc` and `iptables`
//! from iproute2/iptables) run inside a container's network namespace with `nsenter -t PID -n`, on
//! its `cluster`-network interface and address only, so clients on the `client` network are never
//! affected.
//!
//! - Block (one-way partition, and both ways for a cut link): an `iptables -A OUTPUT -d PEER -j DROP`
//!   rule, commented `aivo-load`, in the container's netns.
//! - Shape: an HTB root qdisc on the cluster interface (default class 1:1 unlimited); each peer has a
//!   class of its own (rate = the bandwidth limit) with a u32 filter on the peer's cluster address,
//!   and for latency a `netem delay` qdisc under that class. Per destination and per direction, like
//!   the local backend's proxies: a latency fault on nats2 shapes nats2→nats1 and nats1→nats2, never
//!   nats1→nats3. Latency needs the kernel's netem qdisc (`sch_netem`); a kernel without it (this
//!   project's CI VM has only htb, tbf and ingress) makes the fault fail with tc's own error.
//!
//! A peer that restarts with another address escapes its rule; every revert and `heal` clear them.
//! Needs root (nsenter).

use std::process::Stdio;
use std::time::Duration;

use super::DockerError;
use crate::cluster::proxy::LinkShape;

/// How long one `tc`/`ip` command may take.
const TC_TIMEOUT: Duration = Duration::from_secs(10);

/// What happens to the packets a node sends one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRule {
    /// Delay and/or rate limit.
    Shape(LinkShape),
    /// Drop everything (a one-way partition).
    Drop,
}

/// The comment that marks aivo-load's iptables rules.
const MARK: &str = "aivo-load";

/// An unlimited rate for classes that only carry a delay.
const UNLIMITED: &str = "10gbit";

async fn run(pid: i64, program: &str, args: &[String]) -> Result<String, DockerError> {
    let mut command = tokio::process::Command::new("nsenter");
    command
        .arg("-t")
        .arg(pid.to_string())
        .arg("-n")
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let shown = format!("nsenter -t {pid} -n {program} {}", args.join(" "));
    let output = tokio::time::timeout(TC_TIMEOUT, command.output())
        .await
        .map_err(|_| DockerError::Netem(format!("`{shown}` did not finish within {TC_TIMEOUT:?}")))?
        .map_err(|e| {
            DockerError::Netem(format!(
                "cannot run `{shown}`: {e} (link faults on the docker backend need nsenter, tc and \
                 iptables on the host, and root)"
            ))
        })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(DockerError::Netem(format!(
            "`{shown}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(String::from).collect()
}

/// The interface of the container (`pid`) that holds `ip`.
pub async fn interface_of(pid: i64, ip: &str) -> Result<String, DockerError> {
    let listing = run(pid, "ip", &words("-o -4 addr show")).await?;
    // "12: eth1    inet 172.19.0.2/16 brd ... scope global eth1\ ..."
    listing
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let address = fields.get(3)?.split('/').next()?;
            (address == ip).then(|| fields.get(1).map(|s| s.to_string()))?
        })
        .ok_or_else(|| {
            DockerError::Netem(format!(
                "no interface holds {ip} in process {pid}'s network namespace"
            ))
        })
}

fn drop_rule(verb: &str, peer_ip: &str) -> Vec<String> {
    words(&format!(
        "-w {verb} OUTPUT -d {peer_ip}/32 -m comment --comment {MARK} -j DROP"
    ))
}

/// Sets the rule for packets from the container (`pid`, interface `dev`) to `peer_ip`; `slot` is the
/// peer's index (its class and filter).
pub async fn set(
    pid: i64,
    dev: &str,
    slot: usize,
    peer_ip: &str,
    rule: LinkRule,
) -> Result<(), DockerError> {
    let shape = match rule {
        LinkRule::Drop => {
            if run(pid, "iptables", &drop_rule("-C", peer_ip))
                .await
                .is_err()
            {
                run(pid, "iptables", &drop_rule("-A", peer_ip)).await?;
            }
            return Ok(());
        }
        LinkRule::Shape(shape) => shape,
    };
    let qdiscs = run(pid, "tc", &words(&format!("qdisc show dev {dev}"))).await?;
    if !qdiscs.contains("qdisc htb 1:") {
        run(
            pid,
            "tc",
            &words(&format!(
                "qdisc replace dev {dev} root handle 1: htb default 1"
            )),
        )
        .await?;
        run(
            pid,
            "tc",
            &words(&format!(
                "class replace dev {dev} parent 1: classid 1:1 htb rate {UNLIMITED}"
            )),
        )
        .await?;
    }
    let class = slot + 2;
    let rate = shape.bandwidth.map_or(UNLIMITED.to_string(), |b| {
        format!("{}bit", b.saturating_mul(8).max(8))
    });
    run(
        pid,
        "tc",
        &words(&format!(
            "class replace dev {dev} parent 1: classid 1:{class} htb rate {rate}"
        )),
    )
    .await?;
    if shape.latency_ms > 0 {
        run(
            pid,
            "tc",
            &words(&format!(
                "qdisc replace dev {dev} parent 1:{class} handle {class}0: netem delay {}ms",
                shape.latency_ms
            )),
        )
        .await
        .map_err(|e| {
            DockerError::Netem(format!(
                "latency on the docker backend needs the kernel's netem qdisc (sch_netem), which \
                 this kernel lacks or refuses: {e}"
            ))
        })?;
    }
    // Replace the peer's filter: delete (absent is fine), then add.
    let _ = run(
        pid,
        "tc",
        &words(&format!(
            "filter del dev {dev} parent 1: protocol ip prio {}",
            slot + 1
        )),
    )
    .await;
    run(
        pid,
        "tc",
        &words(&format!(
            "filter add dev {dev} parent 1: protocol ip prio {} u32 match ip dst {peer_ip}/32 flowid 1:{class}",
            slot + 1
        )),
    )
    .await?;
    Ok(())
}

/// Removes the rules for the peer in `slot` at `peer_ip` (nothing there is fine).
pub async fn clear(
    pid: i64,
    dev: &str,
    slot: usize,
    peer_ip: Option<&str>,
) -> Result<(), DockerError> {
    if let Some(ip) = peer_ip {
        while run(pid, "iptables", &drop_rule("-C", ip)).await.is_ok() {
            run(pid, "iptables", &drop_rule("-D", ip)).await?;
        }
    }
    let qdiscs = run(pid, "tc", &words(&format!("qdisc show dev {dev}"))).await?;
    if !qdiscs.contains("qdisc htb 1:") {
        return Ok(());
    }
    let _ = run(
        pid,
        "tc",
        &words(&format!(
            "filter del dev {dev} parent 1: protocol ip prio {}",
            slot + 1
        )),
    )
    .await;
    let class = slot + 2;
    let classes = run(pid, "tc", &words(&format!("class show dev {dev}"))).await?;
    if classes.contains(&format!("class htb 1:{class} ")) {
        run(
            pid,
            "tc",
            &words(&format!("class del dev {dev} classid 1:{class}")),
        )
        .await?;
    }
    Ok(())
}

/// Removes every aivo-load rule and shape of the container.
pub async fn clear_all(pid: i64, dev: &str) -> Result<(), DockerError> {
    let rules = run(pid, "iptables", &words("-w -S OUTPUT")).await?;
    for rule in rules.lines().filter(|l| l.contains(MARK)) {
        if let Some(rest) = rule.strip_prefix("-A ") {
            let mut args = words("-w -D");
            args.extend(words(rest));
            run(pid, "iptables", &args).await?;
        }
    }
    let qdiscs = run(pid, "tc", &words(&format!("qdisc show dev {dev}"))).await?;
    if qdiscs.contains("qdisc htb 1:") {
        run(pid, "tc", &words(&format!("qdisc del dev {dev} root"))).await?;
    }
    Ok(())
}
