//! `deploy/k8s/`: the Indexed Job of a segmented run's workers, its shared volume and the merge
//! Job, parsed and checked: the Job is Indexed with parallelism = completions = the N of
//! `--segment`, the segment comes from `JOB_COMPLETION_INDEX`, workers and merge mount the same
//! claim, and every `aivo-load` invocation in their scripts is checked against the binary's
//! `--help` (each flag exists, values given) with the CI files' checker.

use serde_json::Value;

use crate::ci_workflows::{check_all, load};

fn script(job: &Value) -> String {
    let container = job
        .pointer("/spec/template/spec/containers/0")
        .expect("a container");
    let words = |key: &str| -> Vec<String> {
        container[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let command = words("command");
    assert_eq!(command, ["/bin/sh", "-c"], "a shell script runs aivo-load");
    words("args").join("\n")
}

fn claim(job: &Value) -> String {
    let volumes = job
        .pointer("/spec/template/spec/volumes")
        .and_then(Value::as_array)
        .expect("volumes");
    volumes
        .iter()
        .find_map(|v| v.pointer("/persistentVolumeClaim/claimName")?.as_str())
        .expect("a claim")
        .to_owned()
}

#[test]
fn the_k8s_manifests_run_indexed_workers_and_a_merge_with_flags_that_exist() {
    let workers = load("deploy/k8s/workers-job.yaml");
    let merge = load("deploy/k8s/merge-job.yaml");
    let volume = load("deploy/k8s/reports-volume.yaml");
    assert_eq!(workers["kind"], "Job");
    assert_eq!(
        workers.pointer("/spec/completionMode"),
        Some(&"Indexed".into())
    );
    let completions = workers.pointer("/spec/completions").and_then(Value::as_u64);
    let parallelism = workers.pointer("/spec/parallelism").and_then(Value::as_u64);
    assert!(completions.is_some_and(|n| n > 1), "{completions:?}");
    assert_eq!(completions, parallelism, "all workers run at once");
    let worker_script = script(&workers);
    assert!(
        worker_script.contains("JOB_COMPLETION_INDEX"),
        "{worker_script}"
    );
    let count = completions.expect("completions");
    assert!(
        worker_script.contains(&format!("--segment \"$SEGMENT/{count}\"")),
        "--segment's N is the Job's completions: {worker_script}"
    );
    assert_eq!(volume["kind"], "PersistentVolumeClaim");
    let name = volume.pointer("/metadata/name").and_then(Value::as_str);
    assert_eq!(name, Some(claim(&workers).as_str()));
    assert_eq!(name, Some(claim(&merge).as_str()));
    let modes = volume
        .pointer("/spec/accessModes/0")
        .and_then(Value::as_str);
    assert_eq!(
        modes,
        Some("ReadWriteMany"),
        "pods on several nodes share it"
    );
    let merge_script = script(&merge);
    assert!(merge_script.contains("report merge"), "{merge_script}");
    let (invocations, errors) = check_all(&[
        ("workers-job.yaml".to_string(), worker_script),
        ("merge-job.yaml".to_string(), merge_script),
    ]);
    assert_eq!(invocations, 2, "one aivo-load invocation in each Job");
    assert!(errors.is_empty(), "{errors:#?}");
}
