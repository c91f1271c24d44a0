//! The output: both streams interleaved in write order, and only the tail kept past the limit.

use crate::support::spec;
use cadre_domain::ports::sandbox::Sandbox;
use cadre_sandbox::HostSandbox;

#[tokio::test]
async fn both_streams_in_the_order_written() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = "echo one; echo two >&2; echo three; echo four >&2; printf five";
    let out = HostSandbox::new().run(&spec(dir.path(), cmd)).await.unwrap();
    assert_eq!(out.output, "one\ntwo\nthree\nfour\nfive");
    assert!(!out.truncated);
}

#[tokio::test]
async fn over_ten_megabytes_are_cut_to_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    // 11 bytes a line: 11 MB in all, ending with a stderr line.
    let mut s = spec(dir.path(), "yes 0123456789 | head -n 1000000; echo THE-END >&2");
    s.output_limit = 1000;
    let out = HostSandbox::new().run(&s).await.unwrap();
    assert_eq!(out.exit_code, Some(0));
    assert!(out.truncated);
    assert_eq!(out.output.len(), 1000);
    assert!(out.output.ends_with("0123456789\nTHE-END\n"), "{:?}", &out.output[900..]);
}

#[tokio::test]
async fn output_exactly_at_the_limit_is_not_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(dir.path(), "printf 12345");
    s.output_limit = 5;
    let out = HostSandbox::new().run(&s).await.unwrap();
    assert_eq!((out.output.as_str(), out.truncated), ("12345", false));
    s.output_limit = 4;
    let out = HostSandbox::new().run(&s).await.unwrap();
    assert_eq!((out.output.as_str(), out.truncated), ("2345", true));
}

#[tokio::test]
async fn invalid_utf8_is_replaced_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let out = HostSandbox::new().run(&spec(dir.path(), r"printf 'caf\351\n'")).await.unwrap();
    assert_eq!(out.output, "caf\u{fffd}\n");
}
