//! `deploy/k8s/`: the Indexed Job of a segmented run's workers, its shared volume and the merge
//! Job, parsed and checked: the Job is Indexed with parallelism = completions = the N of
//! `--segment-from-env JOB_COMPLETION_INDEX/N`; no container needs a shell (the image is FROM
//! scratch: exec form, `/aivo-load` itself, and no shell syntax among the arguments); every
//! `$(VAR)` they use is one the README's ConfigMap defines (Kubernetes leaves an undefined one as
//! literal text); they run the image `aivo-load image build` makes; workers and merge mount the
//! same claim; and every flag of every `aivo-load` invocation is checked against the binary's
//! `--help` (each flag exists, values given) with the CI files' checker. The README's "Running on
//! Kubernetes" section is held to the same manifests.

use serde_json::Value;

use crate::ci_workflows::{check_words, load};

/// A container's `command` and `args`, each as words.
fn exec(job: &Value) -> (Vec<String>, Vec<String>) {
    let container = job
        .pointer("/spec/template/spec/containers/0")
        .expect("a container");
    let words = |key: &str| -> Vec<String> {
        container[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    (words("command"), words("args"))
}

/// Why `job`'s container would need a shell, if it would: a command other than the image's
/// binary, or shell syntax (`$VAR`, `${VAR}`, `$((...))`, `;`, `&&`, a pipe, backticks) in an
/// argument, which an exec-form argument passes on as literal text.
fn needs_shell(job: &Value) -> Option<String> {
    let (command, args) = exec(job);
    if command != ["/aivo-load"] {
        return Some(format!("command {command:?} is not [\"/aivo-load\"]"));
    }
    for arg in &args {
        let rest_after_dollar: Vec<&str> = arg.split('$').skip(1).collect();
        let bad_dollar = rest_after_dollar
            .iter()
            .any(|rest| !rest.starts_with('(') || rest.starts_with("(("));
        let operators = ["&&", "||", ";", "|", "`", "\n", "exec "];
        if bad_dollar || operators.iter().any(|op| arg.contains(op)) {
            return Some(format!("argument {arg:?} is shell syntax"));
        }
    }
    None
}

/// The names `$(NAME)` in `args`.
fn substituted(args: &[String]) -> Vec<String> {
    args.iter()
        .flat_map(|arg| arg.split("$(").skip(1))
        .filter_map(|rest| rest.split_once(')').map(|(name, _)| name.to_string()))
        .collect()
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

/// The README's "Running on Kubernetes" section.
fn readme_section() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find("### Running on Kubernetes")
        .expect("a Running on Kubernetes section");
    let rest = &readme[start..];
    let end = rest[4..].find("\n## ").map_or(rest.len(), |i| i + 4);
    rest[..end].to_string()
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
    let count = completions.expect("completions");

    for (name, job) in [("workers-job.yaml", &workers), ("merge-job.yaml", &merge)] {
        assert_eq!(needs_shell(job), None, "{name} needs a shell");
        let image = job
            .pointer("/spec/template/spec/containers/0/image")
            .and_then(Value::as_str);
        assert_eq!(
            image,
            Some(aivo_load::cluster::docker::harness_image::HARNESS_IMAGE),
            "{name} runs the image `aivo-load image build` makes"
        );
    }
    let (_, worker_args) = exec(&workers);
    let (_, merge_args) = exec(&merge);
    let segment_at = worker_args
        .iter()
        .position(|a| a == "--segment-from-env")
        .expect("--segment-from-env");
    assert_eq!(
        worker_args.get(segment_at + 1).map(String::as_str),
        Some(format!("JOB_COMPLETION_INDEX/{count}").as_str()),
        "the segment's N is the Job's completions: {worker_args:?}"
    );
    assert_eq!(merge_args[..2], ["report", "merge"], "{merge_args:?}");
    // Workers against an existing cluster drive load only: a scenario's faults would be refused
    // there (exit 2), and its consumers are the deployment's own, judged by the merge.
    for flag in ["--no-chaos", "--no-consumers"] {
        assert!(
            worker_args.iter().any(|a| a == flag),
            "workers-job.yaml passes {flag}: {worker_args:?}"
        );
    }

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

    let errors: Vec<String> = [
        ("workers-job.yaml", &worker_args),
        ("merge-job.yaml", &merge_args),
    ]
    .into_iter()
    .filter_map(|(step, args)| check_words(step, args).err())
    .collect();
    assert!(errors.is_empty(), "{errors:#?}");

    // The README creates the ConfigMap every $(VAR) comes from, and says what the manifests do.
    let section = readme_section();
    let defined: Vec<&str> = section
        .split("--from-literal=")
        .skip(1)
        .filter_map(|rest| rest.split_once('=').map(|(name, _)| name))
        .collect();
    for var in substituted(&worker_args)
        .into_iter()
        .chain(substituted(&merge_args))
    {
        assert!(
            defined.contains(&var.as_str()),
            "$({var}) is not in the README's ConfigMap ({defined:?}): Kubernetes would pass it \
             on as literal text"
        );
    }
    for needed in [
        "--segment-from-env JOB_COMPLETION_INDEX/",
        "aivo-load image build",
    ] {
        assert!(section.contains(needed), "README section lacks {needed:?}");
    }
    assert!(!section.contains("/bin/sh"), "the image has no shell");
}

/// The shell check itself, on the kinds of container it must refuse (the manifests as they were
/// before, with `/bin/sh -c` and `$((JOB_COMPLETION_INDEX + 1))`) and the one it must accept.
#[test]
fn the_shell_check_refuses_a_script_and_shell_syntax_in_exec_arguments() {
    let job = |command: &str, args: &str| -> Value {
        serde_json::json!({"spec": {"template": {"spec": {"containers": [{
            "command": serde_json::from_str::<Value>(command).expect("json"),
            "args": serde_json::from_str::<Value>(args).expect("json"),
        }]}}}})
    };
    let script = job(
        r#"["/bin/sh", "-c"]"#,
        r#"["SEGMENT=$((JOB_COMPLETION_INDEX + 1))\nexec aivo-load run x --segment \"$SEGMENT/3\""]"#,
    );
    assert!(needs_shell(&script).is_some());
    let shell_vars = job(
        r#"["/aivo-load"]"#,
        r#"["run", "$SCENARIO", "--run-id", "${RUN_ID}"]"#,
    );
    assert!(needs_shell(&shell_vars).is_some());
    let arithmetic = job(r#"["/aivo-load"]"#, r#"["--segment", "$((I + 1))/3"]"#);
    assert!(needs_shell(&arithmetic).is_some());
    let exec_form = job(
        r#"["/aivo-load"]"#,
        r#"["report", "merge", "/reports/$(RUN_ID)", "--server", "$(NATS_URL)"]"#,
    );
    assert_eq!(needs_shell(&exec_form), None);
    assert_eq!(substituted(&exec(&exec_form).1), ["RUN_ID", "NATS_URL"]);
}
