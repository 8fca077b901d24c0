//! The age v1 file format (C2SP age spec), written with ring.
//!
//! Only what the unit needs: X25519 recipient stanzas, the header MAC, and the STREAM payload
//! (ChaCha20-Poly1305 over 64 KiB chunks). The unit holds no identity, so nothing here decrypts;
//! tests check the output against the `age` crate, an independent implementation.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use ring::hkdf::{self, HKDF_SHA256, Salt};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Plaintext bytes in a full STREAM chunk.
pub const CHUNK: usize = 64 * 1024;
/// Authentication tag appended to every chunk.
pub const TAG: usize = 16;
/// Ciphertext bytes of a full chunk.
pub const CHUNK_CT: usize = CHUNK + TAG;
/// Length of the payload nonce that follows the header.
pub const NONCE_LEN: usize = 16;

const INTRO: &[u8] = b"age-encryption.org/v1\n";
const X25519_INFO: &[u8] = b"age-encryption.org/v1/X25519";

/// Why a header could not be made. ring reports no detail; each case means the same thing to a
/// caller: the system random source or a recipient key is unusable.
#[derive(Debug, thiserror::Error)]
#[error("age encryption failed ({0}): check the recipient public keys in the configuration")]
pub struct CryptoError(pub &'static str);

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[u8], out: &mut [u8]) -> Result<(), CryptoError> {
    Salt::new(HKDF_SHA256, salt)
        .extract(ikm)
        .expand(&[info], Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| CryptoError("hkdf"))
}

/// A new age file's header and payload key.
#[derive(Debug)]
pub struct NewFile {
    /// The header and the payload nonce: the first bytes of the file.
    pub prefix: Vec<u8>,
    pub payload: PayloadKey,
}

/// Starts an age file encrypted to `recipients` (X25519 public keys): a fresh file key, one
/// stanza per recipient (each with its own ephemeral key), the header MAC and payload nonce.
pub fn new_file(recipients: &[[u8; 32]], rng: &SystemRandom) -> Result<NewFile, CryptoError> {
    let mut file_key = [0u8; 16];
    rng.fill(&mut file_key).map_err(|_| CryptoError("random"))?;
    let mut header = INTRO.to_vec();
    for r in recipients {
        let eph =
            EphemeralPrivateKey::generate(&X25519, rng).map_err(|_| CryptoError("x25519 key"))?;
        let share = eph
            .compute_public_key()
            .map_err(|_| CryptoError("x25519 public"))?;
        let mut salt = Vec::with_capacity(64);
        salt.extend_from_slice(share.as_ref());
        salt.extend_from_slice(r);
        let mut wrap_key = [0u8; 32];
        let peer = UnparsedPublicKey::new(&X25519, r);
        agreement::agree_ephemeral(eph, &peer, |shared| {
            if shared.iter().all(|b| *b == 0) {
                return Err(CryptoError(
                    "x25519 shared secret is zero: the recipient key is invalid",
                ));
            }
            hkdf_sha256(shared, &salt, X25519_INFO, &mut wrap_key)
        })
        .map_err(|_| CryptoError("x25519 agreement"))??;
        let key = LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, &wrap_key).map_err(|_| CryptoError("wrap key"))?,
        );
        let mut body = file_key.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::empty(),
            &mut body,
        )
        .map_err(|_| CryptoError("wrap"))?;
        header.extend_from_slice(b"-> X25519 ");
        header.extend_from_slice(B64.encode(share.as_ref()).as_bytes());
        header.push(b'\n');
        // 32 bytes encode to 43 characters: one line, shorter than 64 columns, as the spec wants.
        header.extend_from_slice(B64.encode(&body).as_bytes());
        header.push(b'\n');
    }
    header.extend_from_slice(b"---");
    let mut mac_key = [0u8; 32];
    hkdf_sha256(&file_key, &[], b"header", &mut mac_key)?;
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &mac_key), &header);
    header.push(b' ');
    header.extend_from_slice(B64.encode(tag.as_ref()).as_bytes());
    header.push(b'\n');

    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce).map_err(|_| CryptoError("random"))?;
    let mut payload_key = [0u8; 32];
    hkdf_sha256(&file_key, &nonce, b"payload", &mut payload_key)?;
    header.extend_from_slice(&nonce);
    let key = LessSafeKey::new(
        UnboundKey::new(&CHACHA20_POLY1305, &payload_key)
            .map_err(|_| CryptoError("payload key"))?,
    );
    Ok(NewFile {
        prefix: header,
        payload: PayloadKey { key },
    })
}

/// The STREAM key of one file.
pub struct PayloadKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for PayloadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PayloadKey(<redacted>)")
    }
}

impl PayloadKey {
    /// Encrypts chunk `counter` in place and appends its tag. A non-final chunk must hold exactly
    /// [`CHUNK`] bytes; the final one 1 to [`CHUNK`] bytes.
    ///
    /// The caller must not seal two different plaintexts under the same `(counter, last)` except
    /// as described in `ARCHITECTURE.md` ("tentative final chunk").
    pub fn seal(&self, counter: u64, last: bool, buf: &mut Vec<u8>) -> Result<(), CryptoError> {
        debug_assert!(if last {
            (1..=CHUNK).contains(&buf.len())
        } else {
            buf.len() == CHUNK
        });
        // The STREAM nonce: an 11-byte big-endian counter, then the last-chunk flag.
        let mut n = [0u8; 12];
        n[3..11].copy_from_slice(&counter.to_be_bytes());
        n[11] = u8::from(last);
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(n), Aad::empty(), buf)
            .map_err(|_| CryptoError("seal"))
    }
}

/// Finds where the payload starts in an age file's first bytes: the header ends with a line
/// `--- <mac>\n`, then 16 nonce bytes. Returns `None` if `buf` holds no complete header.
pub fn payload_offset(buf: &[u8]) -> Option<usize> {
    if !buf.starts_with(INTRO) {
        return None;
    }
    let mut pos = INTRO.len();
    loop {
        let end = pos + buf[pos..].iter().position(|b| *b == b'\n')?;
        if buf[pos..end].starts_with(b"--- ") {
            return Some(end + 1 + NONCE_LEN);
        }
        pos = end + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn decrypt(identity: &age::x25519::Identity, file: &[u8]) -> Vec<u8> {
        let d = age::Decryptor::new(file).expect("header parses");
        let mut r = d
            .decrypt(std::iter::once(identity as &dyn age::Identity))
            .expect("file key unwraps");
        let mut out = Vec::new();
        r.read_to_end(&mut out).expect("payload authenticates");
        out
    }

    fn encrypt(recipients: &[[u8; 32]], plain: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        let f = new_file(recipients, &rng).unwrap();
        let mut out = f.prefix.clone();
        let chunks: Vec<&[u8]> = plain.chunks(CHUNK).collect();
        for (i, c) in chunks.iter().enumerate() {
            let mut b = c.to_vec();
            f.payload
                .seal(i as u64, i + 1 == chunks.len(), &mut b)
                .unwrap();
            out.extend_from_slice(&b);
        }
        out
    }

    fn key_of(id: &age::x25519::Identity) -> [u8; 32] {
        use std::str::FromStr;
        let s = id.to_public().to_string();
        let r = rdc_recipient(&s);
        assert_eq!(age::x25519::Recipient::from_str(&s).unwrap().to_string(), s);
        r
    }

    fn rdc_recipient(s: &str) -> [u8; 32] {
        // Same decoding as rdc-config, kept local to avoid a dependency cycle in tests.
        let (_, data) = bech32_decode(s);
        data.try_into().unwrap()
    }

    fn bech32_decode(s: &str) -> (String, Vec<u8>) {
        const CHARSET: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
        let pos = s.rfind('1').unwrap();
        let vals: Vec<u8> = s[pos + 1..]
            .bytes()
            .map(|c| CHARSET.iter().position(|x| *x == c).unwrap() as u8)
            .collect();
        let data = &vals[..vals.len() - 6];
        let mut acc = 0u32;
        let mut bits = 0;
        let mut out = Vec::new();
        for v in data {
            acc = (acc << 5) | u32::from(*v);
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        (s[..pos].to_owned(), out)
    }

    #[test]
    fn age_crate_decrypts_every_size() {
        let a = age::x25519::Identity::generate();
        let b = age::x25519::Identity::generate();
        let keys = [key_of(&a), key_of(&b)];
        for len in [
            1,
            100,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            3 * CHUNK,
            3 * CHUNK + 7,
        ] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let file = encrypt(&keys, &plain);
            assert_eq!(decrypt(&a, &file), plain, "len {len}, recipient a");
            assert_eq!(decrypt(&b, &file), plain, "len {len}, recipient b");
            assert_eq!(
                payload_offset(&file).unwrap() + plain.len() + plain.len().div_ceil(CHUNK) * TAG,
                file.len()
            );
        }
    }

    #[test]
    fn other_identity_cannot_decrypt() {
        let a = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let file = encrypt(&[key_of(&a)], b"footage");
        let d = age::Decryptor::new(&file[..]).unwrap();
        assert!(
            d.decrypt(std::iter::once(&other as &dyn age::Identity))
                .is_err()
        );
    }
}
