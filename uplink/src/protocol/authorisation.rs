//! Who may ask what: the roles of the scheme against the requests of `rdc/1`.

use rdc_config::Role;

use super::{Refusal, Request};

/// Whether `role` may make `req` (R9): officers view and export; managers also hold and audit;
/// engineers check the unit but see no footage; auditors read the audit log only.
pub fn authorize(role: Role, req: &Request) -> Result<(), Refusal> {
    let (allowed, needed) = match req {
        Request::Status => (role != Role::Auditor, "officer, manager or engineer"),
        Request::List { .. }
        | Request::Fetch { .. }
        | Request::FetchFirst { .. }
        | Request::Manifests { .. }
        | Request::ExportReceipt { .. }
        | Request::DisclosureReceipt { .. }
        | Request::Activity { .. } => (role.may_see_footage(), "case support officer or manager"),
        Request::HoldCreate { .. } | Request::HoldList | Request::HoldRelease { .. } => {
            (role.may_manage_holds(), "manager")
        }
        Request::Audit { .. } => (role.may_read_audit(), "manager or auditor"),
        Request::StillRequest { .. }
        | Request::StillMake { .. }
        | Request::StillMade { .. }
        | Request::StillRelease { .. } => {
            (role.may_see_footage(), "case support officer or manager")
        }
        Request::StillApprove { .. } => (role == Role::Manager, "Safer Neighbourhoods manager"),
        Request::Stills | Request::Sars => (role != Role::Engineer, "officer, manager or auditor"),
        Request::SarOpen { .. } | Request::SarExtend { .. } | Request::SarClose { .. } => {
            (role == Role::Manager, "manager")
        }
        Request::Still { .. } | Request::CommissionDone { .. } | Request::SelfTest => (
            matches!(role, Role::Engineer | Role::Manager),
            "field engineer or manager",
        ),
    };
    if allowed {
        Ok(())
    } else {
        Err(Refusal::Forbidden {
            role,
            action: req.action().replace('_', " "),
            needed: needed.into(),
        })
    }
}
