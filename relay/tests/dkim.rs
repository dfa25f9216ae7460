//! DKIM signatures checked by an independent verifier: Debian's python3-dkim (dkimpy), given
//! the key's TXT record through its DNS hook. Folded headers, whitespace runs and trailing
//! empty lines exercise the relaxed canonicalization.

use std::process::Command;

use ferry_relay::dkim::{Algorithm, SigningKey, generate};

const VERIFY: &str = r#"
import sys, dkim
message = open(sys.argv[1], 'rb').read()
record = open(sys.argv[2], 'rb').read()
name = sys.argv[3].encode()
def dns(qname, timeout=5):
    return record if qname.rstrip(b'.') == name else None
print("ok" if dkim.verify(message, dnsfunc=dns) else "bad")
"#;

fn verify(message: &[u8], key: &SigningKey) -> anyhow::Result<String> {
    let dir = tempfile::tempdir()?;
    let (m, r) = (dir.path().join("m.eml"), dir.path().join("r.txt"));
    std::fs::write(&m, message)?;
    std::fs::write(&r, key.dns_record()?)?;
    let out = Command::new("/usr/bin/python3")
        .args(["-c", VERIFY])
        .arg(&m)
        .arg(&r)
        .arg(key.dns_name())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "python3-dkim failed (run scripts/install-test-tools): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

const MESSAGE: &[u8] = b"From: Ward 5 <ward@hospital.test>\r\nTo: bob@example.test\r\n\
Subject:  results\r\n\tfolded   onto two lines\r\nDate: Fri, 04 Dec 2026 10:00:00 +0000\r\n\
Message-ID: <m1@hospital.test>\r\n\r\nThe results  are ready.\t\r\n\r\n\r\n";

#[test]
fn python3_dkim_verifies_both_algorithms_and_catches_a_change() -> anyhow::Result<()> {
    for algorithm in [Algorithm::RsaSha256, Algorithm::Ed25519Sha256] {
        let key =
            SigningKey::from_pkcs8(algorithm, "hospital.test", "ferry1", &generate(algorithm)?)?;
        let signed = key.sign(MESSAGE, 1_796_400_000)?;
        assert_eq!(verify(&signed, &key)?, "ok", "{}", algorithm.as_str());

        // Relaxed: whitespace changes in transit still verify; a changed word does not.
        let text = String::from_utf8(signed.clone())?;
        let respaced = text.replace("The results  are ready.", "The results are ready.");
        assert_eq!(verify(respaced.as_bytes(), &key)?, "ok");
        let changed = text.replace("are ready", "are lost!");
        assert_eq!(verify(changed.as_bytes(), &key)?, "bad");
        let other_subject = text.replace("Subject:  results", "Subject:  forged");
        assert_eq!(verify(other_subject.as_bytes(), &key)?, "bad");
    }
    Ok(())
}
