//! A camera's timeline: bytes per minute (the unit's activity, a fixed bucket so hours compare),
//! the recorded spans and the gaps with their causes, preview pictures along it, zoom from a
//! week to a minute, and the form that exports a range. The page is made from two kinds of
//! request to the unit, the activity of each UTC day in view (remembered: a finished day does
//! not change) and the list of segments in view; the pictures follow, one request each, as
//! the browser asks for them, so the page is usable before the last picture arrives.

use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rdc_format::export::Gap;
use rdc_format::time::DAY_NS;

use super::pages::{both_times, case_form, csrf_field, esc, may_see_footage, page};
use super::{Console, SessionId, Shared, lock, refuse};
use crate::events::Events;
use crate::time::parse_time;
use crate::units::connect;
use rdc_config::Id;
use rdc_uplink::client::Client;
use rdc_uplink::protocol::{Justification, Purpose};

const S: i64 = 1_000_000_000;
const MINUTE: i64 = 60 * S;
/// The zoom levels: a week to a minute.
const ZOOMS: [(&str, &str, i64); 6] = [
    ("7d", "week", 7 * DAY_NS),
    ("1d", "day", DAY_NS),
    ("6h", "6 hours", 6 * 3600 * S),
    ("1h", "hour", 3600 * S),
    ("10m", "10 minutes", 10 * MINUTE),
    ("1m", "minute", MINUTE),
];
/// Pictures along a view, at most.
const TILES: i64 = 12;
/// The unit keeps a preview every 10 s by default: tiles no closer.
const TILE_MIN: i64 = 10 * S;
/// The chart's columns, at most.
const COLUMNS: usize = 480;
/// The activity of today is asked for again after this long.
const FRESH: Duration = Duration::from_secs(60);

#[derive(Debug, serde::Deserialize)]
pub(crate) struct View {
    /// The view's end (RFC 3339 UTC, or now-…); default: now.
    end: Option<String>,
    /// One of [`ZOOMS`]; default: a day.
    span: Option<String>,
}

/// `/unit/{unit}/camera/{camera}?end=&span=`.
pub(crate) async fn page_handler(
    c: &Console,
    sid: &SessionId,
    unit: &str,
    camera: &str,
    v: &View,
    uri: &Uri,
) -> Result<Response, Response> {
    may_see_footage(c, unit, "see footage").await?;
    let cam = Id::parse(camera).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            &format!("{camera:?} is not a camera's name: {e}"),
        )
    })?;
    let title = format!("Camera {camera} on unit {unit}");
    let s = c.session(sid);
    if s.case_ref.is_empty() || s.reason.is_empty() {
        return Ok(page(
            &title,
            &case_form(
                c,
                sid,
                &uri.to_string(),
                "Footage is shown only for a case: the unit records who looked, at what, for which case and why.",
            ),
        )
        .into_response());
    }
    let (key, _, span) = ZOOMS
        .iter()
        .find(|z| Some(z.0) == v.span.as_deref())
        .copied()
        .unwrap_or(ZOOMS[1]);
    let now = crate::time::now_ns();
    let end = match v.end.as_deref() {
        Some(e) => parse_time(e).map_err(|e| refuse(StatusCode::BAD_REQUEST, &format!("{e:#}")))?,
        None => now,
    };
    // Whole minutes, so that the activity's buckets fill the columns.
    let end = (end + MINUTE - 1).div_euclid(MINUTE) * MINUTE;
    let from = end - span;
    let just = Justification {
        purpose: Purpose::View,
        case_ref: s.case_ref.clone(),
        reason: s.reason.clone(),
    };
    let data = async {
        let client = connect(&c.target(unit)).await?;
        let (minutes, entries) = tokio::join!(
            activity(c, &client, unit, &cam, (from, end), &just, now),
            client.list(&cam, from, end, &just)
        );
        client.close();
        anyhow::Ok((minutes?, entries?))
    }
    .await;
    let (minutes, mut entries) = match data {
        Ok(d) => d,
        Err(e) => {
            return Ok(page(
                &title,
                &format!(
                    r#"<p class="bad" role="alert">{}</p><p><a href="{}">Try again</a></p>"#,
                    esc(&format!("{e:#}")),
                    esc(&uri.to_string())
                ),
            )
            .into_response());
        }
    };
    entries.sort_by_key(|e| e.segment.seq);
    let gaps = rdc_format::export::gaps((from, end.min(now)), &entries, &|_| true);
    let mut body = format!(
        r#"<p class="case">Viewing for case <strong>{}</strong>: {} (<a href="/case?back={}">change</a>)</p>
<p class="range">{} to {}</p>"#,
        esc(&s.case_ref),
        esc(&s.reason),
        esc(&url::form_urlencoded::byte_serialize(uri.path().as_bytes()).collect::<String>()),
        esc(&both_times(from)),
        esc(&both_times(end)),
    );
    body.push_str(&zoom_nav(unit, camera, key, span, end));
    body.push_str(&chart(&minutes, &entries, &gaps, (from, end), now));
    body.push_str(&gap_list(&gaps));
    body.push_str(&tiles(unit, camera, (from, end)));
    body.push_str(&export_form(c, sid, unit, camera, (from, end.min(now))));
    Ok(page(&title, &body).into_response())
}

pub(crate) async fn view(
    State(c): State<Shared>,
    Extension(sid): Extension<SessionId>,
    UrlPath((unit, camera)): UrlPath<(String, String)>,
    Query(v): Query<View>,
    uri: Uri,
) -> Response {
    page_handler(&c, &sid, &unit, &camera, &v, &uri)
        .await
        .unwrap_or_else(|r| r)
}

/// Bytes per minute of `camera` over `range`, from the activity of each UTC day in it.
async fn activity(
    c: &Console,
    client: &Client,
    unit: &str,
    camera: &Id,
    (from, to): (i64, i64),
    just: &Justification,
    now: i64,
) -> anyhow::Result<Vec<u64>> {
    let first_day = from.div_euclid(DAY_NS) * DAY_NS;
    let days: Vec<i64> = (first_day..to).step_by(DAY_NS as usize).collect();
    let mut per_day = Vec::with_capacity(days.len());
    for d in &days {
        let key = (unit.to_owned(), camera.to_string(), *d);
        let cached = lock(&c.activity).get(&key).and_then(|(m, at)| {
            // A day that ended before it was asked for does not change.
            let finished = *d + DAY_NS + MINUTE < now - at.elapsed().as_nanos() as i64;
            (finished || at.elapsed() < FRESH).then(|| m.clone())
        });
        let m = match cached {
            Some(m) => m,
            None => {
                let m = client
                    .activity(camera, (*d, *d + DAY_NS), MINUTE, just)
                    .await?;
                lock(&c.activity).insert(key, (m.clone(), Instant::now()));
                m
            }
        };
        per_day.push(m);
    }
    let all: Vec<u64> = per_day
        .into_iter()
        .flat_map(|mut m| {
            m.resize(1440, 0);
            m
        })
        .collect();
    let skip = ((from - first_day) / MINUTE) as usize;
    let n = ((to - from) / MINUTE) as usize;
    Ok(all.into_iter().skip(skip).take(n).collect())
}

fn zoom_nav(unit: &str, camera: &str, key: &str, span: i64, end: i64) -> String {
    let base = format!("/unit/{}/camera/{}", esc(unit), esc(camera));
    let centre = end - span / 2;
    let link = |end: i64, span: &str| {
        format!(
            "{base}?end={}&amp;span={span}",
            esc(&rdc_format::time::rfc3339(end))
        )
    };
    let mut o = String::from(r#"<nav class="zoom" aria-label="Zoom and move"><ul>"#);
    o.push_str(&format!(
        r#"<li><a href="{}" rel="prev">&larr; Earlier</a></li>"#,
        link(end - span, key)
    ));
    for (k, words, z) in ZOOMS {
        if k == key {
            o.push_str(&format!(
                r#"<li><strong aria-current="page">{words}</strong></li>"#
            ));
        } else {
            o.push_str(&format!(
                r#"<li><a href="{}">{words}</a></li>"#,
                link(centre + z / 2, k)
            ));
        }
    }
    o.push_str(&format!(
        r#"<li><a href="{}" rel="next">Later &rarr;</a></li><li><a href="{base}?span={key}">Now</a></li></ul></nav>"#,
        link(end + span, key)
    ));
    o
}

/// The chart: bytes per minute (the busiest minute of each column), the recorded spans and
/// the gaps, with times along the bottom. An SVG drawn here; the words are in the gap list.
fn chart(
    minutes: &[u64],
    entries: &[rdc_format::SegmentEntry],
    gaps: &[Gap],
    (from, to): (i64, i64),
    now: i64,
) -> String {
    const W: f64 = 1000.0;
    let x = |t: i64| ((t - from) as f64 / (to - from) as f64 * W).clamp(0.0, W);
    let cols = minutes.len().clamp(1, COLUMNS);
    let per = minutes.len().div_ceil(cols).max(1);
    let columns: Vec<u64> = minutes
        .chunks(per)
        .map(|c| c.iter().copied().max().unwrap_or(0))
        .collect();
    let peak = columns.iter().copied().max().unwrap_or(0);
    let total: u64 = minutes.iter().sum();
    let mut o = format!(
        r#"<figure class="chart"><figcaption>Bytes recorded per minute (the busiest minute of each column; peak {:.2} MB/min, {:.1} MB in view). Green: footage on the unit. Red: a gap (its cause is listed below the chart).</figcaption>
<svg id="chart" viewBox="0 0 1000 170" role="img" aria-label="Activity and recorded footage from {} to {}" data-from="{from}" data-to="{to}" preserveAspectRatio="none">"#,
        peak as f64 / 1e6,
        total as f64 / 1e6,
        esc(&both_times(from)),
        esc(&both_times(to)),
    );
    let cw = W / columns.len().max(1) as f64;
    for (i, b) in columns.iter().enumerate() {
        if *b == 0 || peak == 0 {
            continue;
        }
        let h = (*b as f64 / peak as f64 * 100.0).max(1.0);
        o.push_str(&format!(
            r#"<rect class="act" x="{:.2}" y="{:.2}" width="{:.2}" height="{h:.2}"/>"#,
            i as f64 * cw,
            100.0 - h,
            cw.max(0.5)
        ));
    }
    for e in entries {
        let (a, b) = (x(e.segment.start_ns), x(e.segment.end_ns));
        o.push_str(&format!(
            r#"<rect class="span" x="{a:.2}" y="106" width="{:.2}" height="18"/>"#,
            (b - a).max(0.5)
        ));
    }
    for g in gaps {
        let (a, b) = (x(g.range.from_ns), x(g.range.to_ns));
        o.push_str(&format!(
            r#"<rect class="gap" x="{a:.2}" y="106" width="{:.2}" height="18"><title>Gap: {}</title></rect>"#,
            (b - a).max(1.0),
            esc(&g.cause)
        ));
    }
    if now < to {
        let n = x(now);
        o.push_str(&format!(
            r#"<line class="now" x1="{n:.2}" x2="{n:.2}" y1="0" y2="126"/>"#
        ));
    }
    for i in 0..=4 {
        let t = from + (to - from) * i / 4;
        let anchor = match i {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let label = |s: String| s.get(11..19).unwrap_or(&s).to_owned();
        o.push_str(&format!(
            r#"<text x="{:.1}" y="146" text-anchor="{anchor}">{} UTC</text><text x="{:.1}" y="164" text-anchor="{anchor}" class="local">{}</text>"#,
            x(t),
            esc(&label(rdc_format::time::utc_plain(t))),
            x(t),
            esc(&{
                let l = rdc_format::time::uk_local(t);
                format!("{} {}", label(l.clone()), l.rsplit(' ').next().unwrap_or(""))
            }),
        ));
    }
    o.push_str("</svg></figure>");
    o
}

fn gap_list(gaps: &[Gap]) -> String {
    if gaps.is_empty() {
        return r#"<p id="gaps">No gaps: footage throughout.</p>"#.into();
    }
    let mut o = format!(
        r#"<h2>Gaps ({})</h2><ul id="gaps" class="gaps">"#,
        gaps.len()
    );
    for g in gaps {
        o.push_str(&format!(
            r#"<li class="gap"><span class="when">{} to {}</span> ({:.0} s): <span class="cause">{}</span></li>"#,
            esc(&both_times(g.range.from_ns)),
            esc(&both_times(g.range.to_ns)),
            (g.range.to_ns - g.range.from_ns) as f64 / 1e9,
            esc(&g.cause)
        ));
    }
    o.push_str("</ul>");
    o
}

/// The times of the view's pictures, and the window each is looked for in.
fn tile_times((from, to): (i64, i64)) -> (Vec<i64>, i64) {
    let every = ((to - from) / TILES).max(TILE_MIN);
    let every = every.div_euclid(TILE_MIN) * TILE_MIN;
    let first = from.div_euclid(every) * every;
    let first = if first < from { first + every } else { first };
    let times = (0..)
        .map(|i| first + i * every)
        .take_while(|t| *t < to)
        .collect();
    (times, every.min(MINUTE))
}

fn tiles(unit: &str, camera: &str, range: (i64, i64)) -> String {
    let (times, window) = tile_times(range);
    let mut o = String::from(
        r#"<h2>Pictures</h2><p>The camera's preview nearest after each time (click one to see it large); they arrive one by one.</p><ul class="tiles">"#,
    );
    for t in times {
        let src = format!(
            "/unit/{}/camera/{}/tile?at={t}&amp;window={window}",
            esc(unit),
            esc(camera)
        );
        let when = both_times(t);
        o.push_str(&format!(
            r#"<li><figure><a href="{src}" class="tile"><img src="{src}" loading="lazy" width="256" height="144" alt="Picture from {w}"></a><figcaption>{w}</figcaption></figure></li>"#,
            w = esc(&when)
        ));
    }
    o.push_str("</ul>");
    o
}

fn export_form(
    c: &Console,
    sid: &SessionId,
    unit: &str,
    camera: &str,
    (from, to): (i64, i64),
) -> String {
    let s = c.session(sid);
    let no_identity = if c.identity.is_none() {
        r#"<p class="bad">The console was started without --identity: an export needs the officer's age identity to decrypt the footage.</p>"#
    } else {
        ""
    };
    format!(
        r#"<h2 id="export-heading">Fetch or export a range</h2>{no_identity}<p>Click the chart twice to choose the start and end, or type them (UTC). <strong>Export</strong> makes an evidence bundle for court (signed, with a working copy and rdc verify's checks); <strong>Fetch</strong> brings the segments, checked and decrypted, to look at.</p>
<form method="post" action="/unit/{u}/camera/{cam}/export" class="stack" aria-labelledby="export-heading">{csrf}
<label>From (UTC) <input id="from" name="from" required value="{from}"></label>
<label>To (UTC) <input id="to" name="to" required value="{to}"></label>
<label>Case reference <input id="case" name="case" required value="{case}"></label>
<label>Reason for the export <input id="reason" name="reason" required value="{reason}"></label>
<p><button id="export" name="kind" value="export">Export</button> <button id="fetch" name="kind" value="fetch">Fetch</button></p></form>"#,
        u = esc(unit),
        cam = esc(camera),
        csrf = csrf_field(c, sid),
        from = esc(&rdc_format::time::rfc3339(from)),
        to = esc(&rdc_format::time::rfc3339(to)),
        case = esc(&s.case_ref),
        reason = esc(&s.reason),
    )
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct TileQuery {
    at: i64,
    window: i64,
}

/// `/unit/{unit}/camera/{camera}/tile?at=&window=`: the first preview in `[at, at + window)`
/// as a PNG, or a picture saying why there is none.
pub(crate) async fn tile(
    State(c): State<Shared>,
    Extension(sid): Extension<SessionId>,
    UrlPath((unit, camera)): UrlPath<(String, String)>,
    Query(q): Query<TileQuery>,
) -> Response {
    if let Err(r) = may_see_footage(&c, &unit, "see footage").await {
        return r;
    }
    let Ok(cam) = Id::parse(&camera) else {
        return no_picture(StatusCode::BAD_REQUEST, "no such camera");
    };
    let s = c.session(&sid);
    if s.case_ref.is_empty() {
        return no_picture(StatusCode::FORBIDDEN, "give a case and reason first");
    }
    let Some(identity) = c.identity.clone() else {
        return no_picture(
            StatusCode::OK,
            "start the console with --identity to see pictures",
        );
    };
    let window = q.window.clamp(S, 10 * MINUTE);
    let dir = c
        .state
        .join("previews")
        .join(hex::encode(unit.as_bytes()))
        .join(cam.as_str());
    let png = dir.join(format!("{}-{window}.png", q.at));
    let lock = c.preview_lock(&unit, cam.as_str());
    let _held = lock.lock().await;
    if let Ok(b) = std::fs::read(&png) {
        return picture(b);
    }
    let just = Justification {
        purpose: Purpose::View,
        case_ref: s.case_ref,
        reason: s.reason,
    };
    let got = async {
        let ids = crate::keys::read_identities(&identity)?;
        crate::preview::previews(
            &c.target(&unit),
            &cam,
            (q.at, q.at + window),
            &ids,
            &just,
            &dir.join("segments"),
            &Events::ignore(),
        )
        .await
    }
    .await;
    let p = match got {
        Err(e) => return no_picture(StatusCode::OK, &format!("{e:#}")),
        Ok(p) => p,
    };
    let Some(first) = p.pictures.into_iter().next() else {
        let why = p
            .gaps
            .first()
            .map_or("no preview in this window".to_string(), |g| g.cause.clone());
        return no_picture(StatusCode::OK, &format!("no picture here: {why}"));
    };
    let codec = match first.codec {
        rdc_format::ts::Codec::H264 => "h264",
        rdc_format::ts::Codec::H265 => "h265",
    };
    let tmp = png.with_extension("png.new");
    let made = {
        let tmp = tmp.clone();
        tokio::task::spawn_blocking(move || crate::still::keyframe_to_png(codec, first.data, &tmp))
            .await
    };
    match made {
        Ok(Ok(())) => {
            let _ = std::fs::rename(&tmp, &png);
            match std::fs::read(&png) {
                Ok(b) => picture(b),
                Err(e) => no_picture(StatusCode::OK, &format!("cannot read the picture: {e}")),
            }
        }
        Ok(Err(e)) => no_picture(StatusCode::OK, &format!("{e:#}")),
        Err(e) => no_picture(StatusCode::OK, &format!("{e}")),
    }
}

fn picture(b: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "private, max-age=86400"),
        ],
        b,
    )
        .into_response()
}

/// A tile without a picture: the words why, drawn.
fn no_picture(code: StatusCode, why: &str) -> Response {
    let mut lines: Vec<String> = vec![String::new()];
    for w in why.split_whitespace() {
        let l = lines.last_mut().expect("one line at least");
        if !l.is_empty() && l.len() + w.len() > 34 {
            lines.push(w.to_owned());
        } else {
            if !l.is_empty() {
                l.push(' ');
            }
            l.push_str(w);
        }
    }
    let text: String = lines
        .iter()
        .take(7)
        .enumerate()
        .map(|(i, l)| {
            format!(
                r##"<text x="8" y="{}" font-family="sans-serif" font-size="12" fill="#fff">{}</text>"##,
                20 + i * 17,
                esc(l)
            )
        })
        .collect();
    let svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="256" height="144" viewBox="0 0 256 144"><rect width="256" height="144" fill="#555"/>{text}</svg>"##
    );
    (
        code,
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_fall_on_whole_multiples_inside_the_view() {
        let day0 = 1_795_392_000 * S; // 2026-11-23T00:00:00Z
        let (t, w) = tile_times((day0, day0 + DAY_NS));
        assert_eq!(t.len(), 12);
        assert_eq!(t[0], day0);
        assert_eq!(t[1] - t[0], 2 * 3600 * S);
        assert_eq!(w, MINUTE);
        // A minute: one every 10 s, each looked for in its own 10 s.
        let (t, w) = tile_times((day0 + 5 * S, day0 + 65 * S));
        assert_eq!(t.first(), Some(&(day0 + 10 * S)));
        assert_eq!(t.len(), 6);
        assert_eq!(w, 10 * S);
        assert!(t.iter().all(|x| x % (10 * S) == 0));
    }
}
