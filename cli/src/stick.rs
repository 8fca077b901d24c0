//! `rdc stick prepare` (issue 29, in progress): the signed request an officer puts on a memory
//! stick, which a unit honours once, for its cameras and range, until it expires.

use rdc_format::stick::{self, REQUEST_FILE, StickRequest};

use crate::*;

#[derive(clap::Subcommand, Debug)]
pub(crate) enum StickCmd {
    /// Write onto the stick mounted at DIR a request, signed with your key, for the unit to
    /// export what it names when the stick is inserted.
    Prepare {
        dir: PathBuf,
        /// The unit, as named in the units file (its id).
        #[arg(long, short)]
        unit: String,
        #[arg(long)]
        units: Option<PathBuf>,
        #[arg(long = "camera", required = true)]
        cameras: Vec<Id>,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[arg(long = "case")]
        case_ref: String,
        #[arg(long)]
        reason: String,
        /// Hours the request stays valid (at most a week).
        #[arg(long, default_value_t = 72)]
        valid_hours: u32,
    },
}

pub(crate) fn run(cmd: StickCmd) -> anyhow::Result<()> {
    let StickCmd::Prepare {
        dir,
        unit,
        units,
        cameras,
        from,
        to,
        case_ref,
        reason,
        valid_hours,
    } = cmd;
    let (from_ns, to_ns) = (parse_time(&from)?, parse_time(&to)?);
    if from_ns >= to_ns {
        bail!("--from must be before --to");
    }
    let target = Target { unit, units };
    let entry = units::entry(&target)?;
    let cert_pem = std::fs::read_to_string(&entry.cert)
        .with_context(|| format!("reading your certificate {}", entry.cert.display()))?;
    let key_pem = std::fs::read_to_string(&entry.key)
        .with_context(|| format!("reading your key {}", entry.key.display()))?;
    let now = crate::export::now_ns();
    let valid = i64::from(valid_hours) * 3_600_000_000_000;
    if valid <= 0 || valid > stick::MAX_VALID_NS {
        bail!(
            "--valid-hours: 1 to {} (a week)",
            stick::MAX_VALID_NS / 3_600_000_000_000
        );
    }
    let nonce = {
        use ring::rand::SecureRandom as _;
        let mut b = [0u8; 16];
        ring::rand::SystemRandom::new()
            .fill(&mut b)
            .map_err(|_| anyhow!("no randomness"))?;
        hex::encode(b)
    };
    let body = StickRequest {
        format: stick::FORMAT.into(),
        unit: target.unit.clone(),
        cameras: cameras.iter().map(|c| c.to_string()).collect(),
        from_ns,
        to_ns,
        case_ref,
        reason,
        made_ns: now,
        expires_ns: now + valid,
        nonce,
    };
    stick::check_terms(&body, &target.unit, now).map_err(|e| anyhow!("{e}"))?;
    let doc = rdc_uplink::stills::sign(&body, &cert_pem, &key_pem)
        .context("your key cannot sign the request")?;
    let p = dir.join(REQUEST_FILE);
    let tmp = dir.join("RDC-REQUEST.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&doc)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &p)?;
    outln!(
        "{} written: unit {} may export {} from {} to {} until {}; insert the stick into the unit",
        p.display(),
        target.unit,
        body.cameras.join(", "),
        rdc_format::time::rfc3339(from_ns),
        rdc_format::time::rfc3339(to_ns),
        rdc_format::time::rfc3339(body.expires_ns)
    );
    Ok(())
}
