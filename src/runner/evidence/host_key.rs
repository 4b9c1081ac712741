//! The host's OpenSSH public key: one `ssh-ed25519 <base64> [comment]` line.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::VerifyingKey;

const ED25519: &str = "ssh-ed25519";

/// Parses the text of an OpenSSH `.pub` file into an ed25519 key. The
/// error says what is wrong, without the file name.
pub(crate) fn parse(text: &str) -> Result<VerifyingKey, String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let line = lines
        .next()
        .ok_or("the file is empty; expected one `ssh-ed25519 <base64> [comment]` line")?;
    if lines.next().is_some() {
        return Err("expected exactly one key line, found several".to_owned());
    }
    let mut fields = line.split_ascii_whitespace();
    let key_type = fields.next().unwrap_or_default();
    if key_type != ED25519 {
        return Err(format!(
            "key type {:?} is not supported: evidence is signed with the host's \
             ssh-ed25519 key (point --host-key at ssh_host_ed25519_key.pub)",
            short(key_type)
        ));
    }
    let b64 = fields
        .next()
        .ok_or("malformed OpenSSH public key: no base64 key after `ssh-ed25519`")?;
    let blob = STANDARD
        .decode(b64)
        .map_err(|e| format!("malformed OpenSSH public key: base64: {e}"))?;
    let raw = wire_key(&blob).map_err(|e| format!("malformed OpenSSH public key: {e}"))?;
    VerifyingKey::from_bytes(&raw)
        .map_err(|_| "malformed OpenSSH public key: not a valid ed25519 point".to_owned())
}

/// The key bytes of the SSH wire blob: string "ssh-ed25519", string of 32
/// bytes, nothing after.
fn wire_key(blob: &[u8]) -> Result<[u8; 32], String> {
    let mut rest = blob;
    let name = wire_string(&mut rest)?;
    if name != ED25519.as_bytes() {
        return Err(format!(
            "key blob is of type {:?}, the line says ssh-ed25519",
            short(&String::from_utf8_lossy(name))
        ));
    }
    let key = wire_string(&mut rest)?;
    let key: [u8; 32] = key
        .try_into()
        .map_err(|_| format!("ed25519 key is {} bytes, expected 32", key.len()))?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes after the key", rest.len()));
    }
    Ok(key)
}

fn wire_string<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let truncated = || "key blob is truncated".to_owned();
    let (len, tail) = rest.split_first_chunk::<4>().ok_or_else(truncated)?;
    let len = u32::from_be_bytes(*len) as usize;
    if tail.len() < len {
        return Err(truncated());
    }
    let (s, tail) = tail.split_at(len);
    *rest = tail;
    Ok(s)
}

fn short(s: &str) -> String {
    s.chars().take(40).collect()
}
