//! Holds (R6): created with a case reference and a review date, released, lapsed; all logged.

use super::*;

impl Store {
    // ---- holds ------------------------------------------------------------------------------

    /// Active holds (lapsing those past their review date first).
    /// The holds in force now. A hold past its review date is not one, though its lapse is
    /// logged only by the next retention run ([`Store::enforce_retention`]): looking never
    /// writes.
    pub fn holds(&self) -> Result<Vec<Hold>, Error> {
        let now = self.now_ns();
        Ok(lock(&self.inner.holds)
            .iter()
            .filter(|h| h.request.review_ns > now)
            .cloned()
            .collect())
    }

    pub(super) fn lapse_holds(&self) -> Result<Vec<u64>, Error> {
        if self.inner.read_only {
            // Looked at, not changed: lapsed holds are left for the recorder to log.
            let now = self.now_ns();
            lock(&self.inner.holds).retain(|h| h.request.review_ns > now);
            return Ok(Vec::new());
        }
        let now = self.now_ns();
        let lapsed: Vec<Hold> = lock(&self.inner.holds)
            .iter()
            .filter(|h| h.request.review_ns <= now)
            .cloned()
            .collect();
        for h in &lapsed {
            tracing::warn!(hold = h.id, case = %h.request.case_ref, "hold lapsed: its review date passed without renewal; its footage now follows normal retention");
            let mut logs = lock(&self.inner.logs);
            logs.holds.append(now, &HoldEvent::Lapsed { id: h.id })?;
            logs.audit.append(
                now,
                &AuditRecord {
                    who: "unit".into(),
                    role: rdc_format::Actor::System,
                    action: "hold_lapsed".into(),
                    case_ref: Some(h.request.case_ref.clone()),
                    outcome: rdc_format::Outcome::Done,
                    detail: Some(format!(
                        "hold {} passed its review date {}",
                        h.id,
                        crate::clock::rfc3339(h.request.review_ns)
                    )),
                    ..Default::default()
                },
            )?;
            drop(logs);
            lock(&self.inner.holds).retain(|x| x.id != h.id);
        }
        Ok(lapsed.iter().map(|h| h.id).collect())
    }

    pub(super) fn held_bytes(&self, holds: &[Hold]) -> Result<u64, Error> {
        let now = self.now_ns();
        let mut seen = HashSet::new();
        let mut total = 0;
        for h in holds {
            let cams = if h.request.cameras.is_empty() {
                self.cameras()?
            } else {
                h.request.cameras.clone()
            };
            for c in cams {
                for e in self.list(&c, h.request.from_ns, h.request.to_ns)? {
                    if h.covers(&e.segment.camera, e.segment.start_ns, e.segment.end_ns, now)
                        && seen.insert((e.segment.camera.clone(), e.segment.seq))
                    {
                        total += e.segment.bytes;
                    }
                }
            }
        }
        Ok(total)
    }

    /// Holds footage past retention (R6). Refused without a case reference and reason, with a
    /// review date in the past or more than a year ahead, or when held footage would take more
    /// than its share of the budget (recording must never stop).
    /// `by` is the role of the person asking (what the audit entry names).
    pub fn create_hold(&self, req: HoldRequest, by: rdc_format::Actor) -> Result<Hold, Error> {
        let now = self.now_ns();
        let refuse = |m: String| Err(Error::HoldRefused(m));
        if req.case_ref.trim().is_empty()
            || req.reason.trim().is_empty()
            || req.who.trim().is_empty()
        {
            return refuse("a hold needs a case reference, a reason and who asked for it".into());
        }
        if req.from_ns >= req.to_ns {
            return refuse("the time range is empty: 'from' must be before 'to'".into());
        }
        if req.review_ns <= now || req.review_ns > now + 366 * DAY_NS {
            return refuse("the review date must be in the future and at most a year ahead (holds are reviewed at least yearly)".into());
        }
        let mut all = self.holds()?;
        let id = chainlog::read_all::<HoldEvent>(lock(&self.inner.logs).holds.path())?
            .iter()
            .filter_map(|(_, e)| {
                if let HoldEvent::Created { hold } = e {
                    Some(hold.id)
                } else {
                    None
                }
            })
            .max()
            .map_or(1, |m| m + 1);
        let hold = Hold {
            id,
            request: req,
            created_ns: now,
        };
        all.push(hold.clone());
        let held = self.held_bytes(&all)?;
        let cap = (self.budget_bytes()? as f64 * self.inner.cfg.max_held_fraction) as u64;
        if held > cap {
            return refuse(format!(
                "held footage would be {held} bytes, over the cap of {cap} bytes ({:.0} % of the budget) that keeps recording going: narrow the hold or release another",
                self.inner.cfg.max_held_fraction * 100.0
            ));
        }
        let mut logs = lock(&self.inner.logs);
        logs.holds
            .append(now, &HoldEvent::Created { hold: hold.clone() })?;
        logs.audit.append(
            now,
            &AuditRecord {
                who: hold.request.who.clone(),
                role: by,
                action: "hold_created".into(),
                from_ns: Some(hold.request.from_ns),
                to_ns: Some(hold.request.to_ns),
                case_ref: Some(hold.request.case_ref.clone()),
                reason: Some(hold.request.reason.clone()),
                outcome: rdc_format::Outcome::Granted,
                detail: Some(format!(
                    "hold {} on {}",
                    hold.id,
                    if hold.request.cameras.is_empty() {
                        "all cameras".into()
                    } else {
                        hold.request.cameras.join(", ")
                    }
                )),
                ..Default::default()
            },
        )?;
        drop(logs);
        lock(&self.inner.holds).push(hold.clone());
        Ok(hold)
    }

    /// Releases a hold; its footage then follows normal retention.
    pub fn release_hold(
        &self,
        id: u64,
        (who, by): (&str, rdc_format::Actor),
        reason: &str,
    ) -> Result<Hold, Error> {
        let hold = lock(&self.inner.holds)
            .iter()
            .find(|h| h.id == id)
            .cloned()
            .ok_or(Error::NoSuchHold(id))?;
        let now = self.now_ns();
        let mut logs = lock(&self.inner.logs);
        logs.holds.append(
            now,
            &HoldEvent::Released {
                id,
                who: who.into(),
                reason: reason.into(),
            },
        )?;
        logs.audit.append(
            now,
            &AuditRecord {
                who: who.into(),
                role: by,
                action: "hold_released".into(),
                case_ref: Some(hold.request.case_ref.clone()),
                reason: Some(reason.into()),
                outcome: rdc_format::Outcome::Granted,
                detail: Some(format!("hold {id}")),
                ..Default::default()
            },
        )?;
        drop(logs);
        lock(&self.inner.holds).retain(|h| h.id != id);
        Ok(hold)
    }
}
