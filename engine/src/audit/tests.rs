use super::*;

fn record(i: usize) -> SubplanRecord {
    SubplanRecord {
        query_id: format!("q{i}"),
        analyst: "dr.kim".into(),
        permit: Some("LU-1".into()),
        purpose: Some("scientific_research".into()),
        release: 0,
        sql: "SELECT count(*) FROM person".into(),
        decision: Decision::Answered,
        code: None,
        reason: None,
        released_groups: Some(3),
        suppressed_groups: Some(1),
        elapsed_ms: 12,
    }
}

async fn written(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("audit.jsonl");
    let log = Arc::new(AuditLog::open(&path, "site:lu").expect("open"));
    for i in 0..n {
        log.append("subplan", &record(i)).await.expect("append");
    }
    path
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(str::to_string)
        .collect()
}

fn first_bad(path: &Path) -> Option<usize> {
    verify_file(path).expect("verify").first_bad.map(|b| b.line)
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ihdsi-audit-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

#[tokio::test]
async fn an_intact_trail_verifies_and_reopening_continues_the_chain() {
    let dir = tmpdir("intact");
    let path = written(&dir, 3).await;
    let log = Arc::new(AuditLog::open(&path, "site:lu").expect("reopen"));
    log.append("subplan", &record(9)).await.expect("append");
    let report = verify_file(&path).expect("verify");
    assert_eq!(report.first_bad, None);
    assert_eq!(report.records, 4);
    assert!(lines(&path)[0].contains("\"prev\":\"0000"));
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn every_kind_of_tampering_names_the_first_bad_line() {
    let dir = tmpdir("tamper");
    let path = written(&dir, 5).await;
    let head = head_path(&path);
    let original = lines(&path);
    let write = |ls: &[String], tail: &str| {
        std::fs::write(&path, format!("{}{tail}", ls.join("\n"))).expect("write");
    };

    let mut edited = original.clone();
    edited[2] = edited[2].replace("\"released_groups\":3", "\"released_groups\":4");
    write(&edited, "\n");
    assert_eq!(first_bad(&path), Some(3), "edited");

    let mut reordered = original.clone();
    reordered.swap(1, 2);
    write(&reordered, "\n");
    assert_eq!(first_bad(&path), Some(2), "reordered");

    let mut deleted = original.clone();
    deleted.remove(3);
    write(&deleted, "\n");
    assert_eq!(first_bad(&path), Some(4), "deleted");

    let mut cut = original.clone();
    let half = cut[4].len() / 2;
    cut[4].truncate(half);
    write(&cut, "");
    assert_eq!(first_bad(&path), Some(5), "truncated mid-record");

    write(&original[..3], "\n");
    assert_eq!(first_bad(&path), Some(4), "last records deleted");

    // Without the head, deleting whole records from the end is invisible:
    // that is what the head is for.
    std::fs::remove_file(&head).expect("rm head");
    assert_eq!(first_bad(&path), None);

    write(&edited, "\n");
    let err = AuditLog::open(&path, "site:lu").expect_err("damaged");
    assert!(err.to_string().contains("line 3"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}
