//! The recorder against cameras of every kind: codecs, audio, credentials, UDP, outages,
//! stalls, garbage, a SIGKILL.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use rdc_storage::{Ended, TimeSource};

use crate::harness::*;

#[test]
fn three_cameras_for_a_minute() {
    if skip_long("three_cameras_for_a_minute") {
        return;
    }
    let plain = Camera::start(&[]);
    let with_audio = Camera::start(&["--audio"]);
    let bframes = Camera::start(&["--bframes", "2", "--gop", "50"]);
    let mut unit = Unit::new(&[
        Cam {
            id: "front",
            url: plain.url(),
            extra: String::new(),
        },
        Cam {
            id: "door",
            url: with_audio.url(),
            extra: String::new(),
        },
        Cam {
            id: "yard",
            url: bframes.url(),
            extra: String::new(),
        },
    ]);
    let started = now_ns();
    unit.start();
    // A minute of each camera: six finished 10 s segments.
    wait_for("a minute of each camera", Duration::from_secs(120), || {
        ["front", "door", "yard"]
            .iter()
            .all(|c| segment_files(&unit, c) >= 6)
    });
    let stopped = now_ns();
    unit.stop();
    let store = unit.store();
    for cam in ["front", "door", "yard"] {
        let ms = unit.manifests(&store, cam);
        assert!(
            ms.len() >= 5,
            "{cam}: {} segments in a minute of 10 s segments",
            ms.len()
        );
        // Recording started within a few seconds (connect and the first keyframe, 2 s GOP at
        // most) and ran to the stop.
        assert!(
            ms[0].start_ns - started < 5_000_000_000,
            "{cam}: first segment started {} ms after the recorder",
            (ms[0].start_ns - started) / 1_000_000
        );
        assert!(
            stopped - ms.last().unwrap().end_ns < 2_000_000_000,
            "{cam}: recording ended early"
        );
        // No gap between segments: each ends where the next begins.
        for w in ms.windows(2) {
            assert_eq!(
                w[0].ended,
                Ended::Cut,
                "{cam}: unexpected gap after segment {}: {:?}",
                w[0].seq,
                w[0].ended
            );
            assert_eq!(
                w[0].end_ns, w[1].start_ns,
                "{cam}: segments {} and {} do not meet",
                w[0].seq, w[1].seq
            );
        }
        assert_eq!(
            ms.last().unwrap().ended,
            Ended::Stopped {
                cause: "the recorder stopped".into()
            }
        );
        // Keyframes every 1 s (2 s for yard) land on 10 s: each segment is cut there, to the
        // frame, not a keyframe later.
        for m in &ms[..ms.len() - 1] {
            let secs = (m.end_mono_ns - m.start_mono_ns) as f64 / 1e9;
            assert!(
                (secs - 10.0).abs() < 0.002,
                "{cam}/{}: cut after {secs:.3} s, not at the keyframe on 10 s",
                m.seq
            );
        }
        // Frame times from the camera's clock (its RTCP sender reports agree with the unit's).
        assert!(
            ms.iter()
                .skip(1)
                .all(|m| m.times_from == Some(TimeSource::CameraRtcp)),
            "{cam}: {:?}",
            ms.iter().map(|m| m.times_from).collect::<Vec<_>>()
        );
        let covered: i64 = ms.iter().map(|m| m.duration_ns()).sum();
        assert!(
            covered > 54_000_000_000,
            "{cam}: only {} s covered",
            covered / 1_000_000_000
        );
        for m in &ms {
            let ts = unit.decrypt(&store, cam, m.seq);
            let p = probe(&ts);
            assert_eq!(
                p.streams,
                vec!["video"],
                "{cam}/{}: exactly one video stream, no audio: {p:?}",
                m.seq
            );
            assert_eq!(p.codec, "h264");
            assert_eq!(
                p.first_frame, "I",
                "{cam}/{}: does not play from its first frame: {p:?}",
                m.seq
            );
            // The camera's timing, exactly, from the first segment of the connection on.
            p.assert_exact_timing(&format!("{cam}/{}", m.seq), 40.0);
            assert!(
                p.frames + 2 >= m.frames,
                "{cam}/{}: {} frames decoded of {}",
                m.seq,
                p.frames,
                m.frames
            );
        }
    }
    assert!(
        unit.log().contains("audio is never recorded"),
        "the audio track was not refused"
    );
    assert!(store.verify(true).unwrap().is_empty());
}

#[test]
fn camera_killed_and_restarted_gap_recorded_recording_resumes() {
    let mut cam = Camera::start(&[]);
    let other = Camera::start(&[]);
    let mut unit = Unit::new(&Cam::front_and_rear(cam.url(), other.url()));
    unit.start();
    unit.wait_connected(2);
    wait_for("front recording", Duration::from_secs(30), || {
        recording(&unit, "front")
    });
    cam.kill();
    let killed = now_ns();
    wait_for(
        "the recorder to notice the camera is gone",
        Duration::from_secs(30),
        || unit.log().contains("camera session ended"),
    );
    cam.restart();
    let back = now_ns();
    // Front records again; rear has recorded throughout, three segments of it.
    wait_for(
        "front back, and 20 s of rear",
        Duration::from_secs(60),
        || recording_since(&unit, "front", back) && segment_files(&unit, "rear") >= 3,
    );
    unit.stop();
    let store = unit.store();
    let ms = unit.manifests(&store, "front");
    let gap = ms
        .iter()
        .position(|m| matches!(m.ended, Ended::Stopped { .. }) && m.end_ns < back)
        .expect("a segment ends at the outage");
    let Ended::Stopped { cause } = &ms[gap].ended else {
        unreachable!()
    };
    assert!(!cause.is_empty());
    assert!(
        (ms[gap].end_ns - killed).abs() < 3_000_000_000,
        "gap recorded at the outage ({cause})"
    );
    let resumed = &ms[gap + 1];
    assert!(resumed.start_ns > ms[gap].end_ns);
    assert!(
        resumed.start_ns - back < 5_000_000_000,
        "recording resumed {} ms after the camera came back",
        (resumed.start_ns - back) / 1_000_000
    );
    let p = probe(&unit.decrypt(&store, "front", resumed.seq));
    assert_eq!(p.first_frame, "I");
    // The first segment after the reconnect has the camera's timing too.
    p.assert_exact_timing("front after the reconnect", 40.0);
    // The other camera did not notice: it recorded throughout, without a gap.
    let rear = unit.manifests(&store, "rear");
    assert!(
        rear.len() >= 2 && rear.last().unwrap().end_ns - rear[0].start_ns > 20_000_000_000,
        "rear recorded {} segments",
        rear.len()
    );
    for w in rear.windows(2) {
        assert_eq!(
            w[0].end_ns, w[1].start_ns,
            "rear: a gap while front was down"
        );
    }
}

#[test]
fn a_stalled_camera_is_noticed_and_recording_resumes() {
    let cam = Camera::start(&[]);
    let mut unit = Unit::single(cam.url());
    unit.start();
    unit.wait_connected(1);
    wait_for("front recording", Duration::from_secs(30), || {
        recording(&unit, "front")
    });
    // Freeze the camera: its connection stays open but no data flows, until the recorder
    // notices the stall.
    cam.signal("-STOP");
    wait_for("the stall noticed", Duration::from_secs(30), || {
        unit.log().contains("the camera stalled")
    });
    cam.signal("-CONT");
    let back = now_ns();
    unit.wait_connected(2);
    wait_for("front recording again", Duration::from_secs(30), || {
        recording_since(&unit, "front", back)
    });
    unit.stop();
    let store = unit.store();
    let ms = unit.manifests(&store, "front");
    let stalled = ms
        .iter()
        .position(|m| matches!(&m.ended, Ended::Stopped { cause } if cause.contains("stalled")))
        .expect("the stall is recorded as the gap's cause");
    assert!(
        ms[stalled + 1].start_ns - back < 8_000_000_000,
        "recording resumed {} ms after the camera recovered",
        (ms[stalled + 1].start_ns - back) / 1_000_000
    );
}

#[test]
fn a_camera_that_hiccups_keeps_its_frame_times() {
    let cam = Camera::start(&[]);
    let mut unit = Unit::single(cam.url());
    unit.start();
    unit.wait_connected(1);
    wait_for("front recording", Duration::from_secs(30), || {
        recording(&unit, "front")
    });
    // Frozen for 3 s (a duration, not a wait: the hiccup itself), less than the stall timeout: the connection stays, and the camera then
    // sends what it captured meanwhile, late. Those frames were captured at their RTP times;
    // arriving late must not move them, nor the cut.
    cam.signal("-STOP");
    std::thread::sleep(Duration::from_secs(3));
    cam.signal("-CONT");
    wait_for("two segments", Duration::from_secs(40), || {
        segment_files(&unit, "front") >= 2
    });
    unit.stop();
    let log = unit.log();
    assert_eq!(
        log.matches("camera connected").count(),
        1,
        "the hiccup ended the session:\n{log}"
    );
    let store = unit.store();
    let ms = unit.manifests(&store, "front");
    assert_eq!(ms[0].ended, Ended::Cut, "{:?}", ms[0].ended);
    let secs = (ms[0].end_mono_ns - ms[0].start_mono_ns) as f64 / 1e9;
    assert!(
        (secs - 10.0).abs() < 0.002,
        "cut after {secs:.3} s of the camera's time, not at its keyframe on 10 s:\n{log}"
    );
    // Its wall times too (within the camera's and the unit's disagreement: the first frames'
    // times are the unit's, until the camera's first sender report).
    let wall = (ms[0].end_ns - ms[0].start_ns) as f64 / 1e9;
    assert!(
        (wall - 10.0).abs() < 0.1,
        "the segment spans {wall:.3} s of wall time"
    );
    assert_eq!(ms[0].end_ns, ms[1].start_ns, "the segments do not meet");
    let p = probe(&unit.decrypt(&store, "front", ms[0].seq));
    p.assert_exact_timing("front/0", 40.0);
    assert!(
        p.frames + 2 >= 250,
        "{} frames of the camera's 250 in its first 10 s",
        p.frames
    );
}

#[test]
fn recorder_killed_nothing_synced_lost() {
    let cam = Camera::start(&[]);
    let mut unit = Unit::single(cam.url());
    unit.start();
    wait_for("a first segment", Duration::from_secs(40), || {
        segment_files(&unit, "front") >= 1
    });
    // The second segment under way, with footage synced, when the power goes.
    wait_for(
        "the second segment under way",
        Duration::from_secs(30),
        || segment_partial_bytes(&unit, "front") > 65_552,
    );
    unit.kill();
    let killed = now_ns();
    // Restarted, the recorder recovers the cut segment and records on.
    unit.start();
    unit.wait_connected(2);
    wait_for(
        "recording after the restart",
        Duration::from_secs(30),
        || recording_since(&unit, "front", killed),
    );
    unit.stop();
    let store = unit.store();
    let ms = unit.manifests(&store, "front");
    let cut = ms
        .iter()
        .find(|m| m.ended == Ended::PowerLoss)
        .expect("the segment open at the kill is recovered");
    // Synced every second: at most about a second (plus the queue) is lost.
    assert!(
        killed - cut.end_ns < 2_500_000_000,
        "recovered segment ends {} ms before the kill",
        (killed - cut.end_ns) / 1_000_000
    );
    let p = probe(&unit.decrypt(&store, "front", cut.seq));
    assert_eq!(p.first_frame, "I");
    assert!(p.decode_errors.is_empty(), "{:?}", p.decode_errors);
    assert!(
        p.frames + 2 >= cut.frames,
        "{} decoded of {}",
        p.frames,
        cut.frames
    );
    assert!(
        ms.last().unwrap().start_ns > killed,
        "recording went on after the restart: {:?}\n{}",
        ms.iter()
            .map(|m| (m.seq, m.start_ns - killed, m.end_ns - killed, &m.ended))
            .collect::<Vec<_>>(),
        unit.log()
    );
    assert!(unit.log().contains("recovered"), "the recovery is logged");
    assert!(store.verify(true).unwrap().is_empty());
}

#[test]
fn h265_camera_is_recorded() {
    let cam = Camera::start(&["--codec", "h265"]);
    let mut unit = Unit::single(cam.url());
    unit.start();
    wait_for("a segment", Duration::from_secs(40), || {
        segment_files(&unit, "front") >= 1
    });
    unit.stop();
    let store = unit.store();
    let ms = unit.manifests(&store, "front");
    let p = probe(&unit.decrypt(&store, "front", ms[0].seq));
    assert_eq!(p.codec, "hevc", "{p:?}");
    assert_eq!(p.first_frame, "I");
    p.assert_exact_timing("h265", 40.0);
}

#[test]
fn credentials_over_udp_and_a_wrong_password() {
    // B-frames over UDP: the decode times must still be exact.
    let cam = Camera::start(&[
        "--credentials",
        "recorder:s3cret-pw",
        "--bframes",
        "2",
        "--gop",
        "50",
    ]);
    let digest = Camera::start(&["--credentials", "recorder:s3cret-pw", "--digest"]);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.pw");
    let bad = dir.path().join("bad.pw");
    for (p, v) in [(&good, "s3cret-pw\n"), (&bad, "guess\n")] {
        std::fs::write(p, v).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let extra = |p: &Path, transport: &str| {
        format!(
            "transport = \"{transport}\"\nusername = \"recorder\"\npassword_file = \"{}\"",
            p.display()
        )
    };
    let mut unit = Unit::new(&[
        Cam {
            id: "good",
            url: cam.url(),
            extra: extra(&good, "udp"),
        },
        Cam {
            id: "bad",
            url: cam.url(),
            extra: extra(&bad, "tcp"),
        },
        Cam {
            id: "digest",
            url: digest.url(),
            extra: extra(&good, "tcp"),
        },
    ]);
    unit.start();
    wait_for("a segment over UDP", Duration::from_secs(40), || {
        segment_files(&unit, "good") >= 1 && segment_files(&unit, "digest") >= 1
    });
    wait_for("the refusal", Duration::from_secs(20), || {
        unit.log().contains("refused the credentials")
    });
    unit.stop();
    assert_eq!(segment_files(&unit, "bad"), 0);
    let log = unit.log();
    assert!(
        !log.contains("s3cret-pw"),
        "the password appears in the log"
    );
    let store = unit.store();
    let p = probe(&unit.decrypt(&store, "good", 0));
    assert_eq!(p.first_frame, "I");
    p.assert_exact_timing("B-frames over UDP", 40.0);
    let p = probe(&unit.decrypt(&store, "digest", 0));
    assert_eq!(p.first_frame, "I", "digest authentication");
}

#[test]
fn a_camera_sending_another_codec_is_refused_clearly() {
    let cam = Camera::start(&["--mjpeg"]);
    let mut unit = Unit::single(cam.url());
    unit.start();
    wait_for("the refusal", Duration::from_secs(30), || {
        unit.log().contains("only H.264 and H.265 are recorded")
    });
    unit.stop();
    assert_eq!(segment_files(&unit, "front"), 0);
}

#[test]
fn cameras_sending_garbage_do_not_disturb_the_others() {
    let corrupt = Camera::start(&["--corrupt", "0.0005"]);
    let clean = Camera::start(&[]);
    // Something on the camera's address answering RTSP with random bytes.
    let junk = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let junk_port = junk.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for conn in junk.incoming().take(50) {
            let Ok(mut c) = conn else { continue };
            let mut bytes = vec![0u8; 4096];
            for b in &mut bytes {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let _ = std::io::Write::write_all(&mut c, &bytes);
        }
    });
    let mut unit = Unit::new(&[
        Cam {
            id: "corrupt",
            url: corrupt.url(),
            extra: String::new(),
        },
        Cam {
            id: "junk",
            url: format!("rtsp://127.0.0.1:{junk_port}/cam"),
            extra: String::new(),
        },
        Cam {
            id: "clean",
            url: clean.url(),
            extra: String::new(),
        },
    ]);
    unit.start();
    wait_for(
        "the junk camera refused, and two segments of the clean one",
        Duration::from_secs(60),
        || {
            unit.log()
                .contains("camera=junk cause=the camera's answer is not valid RTSP")
                && segment_files(&unit, "clean") >= 2
        },
    );
    unit.stop(); // a clean exit: nothing crashed
    let log = unit.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.contains("camera=junk cause=the camera's answer is not valid RTSP"),
        "the junk camera's failure is logged, and says what to check"
    );
    let store = unit.store();
    let ms = unit.manifests(&store, "clean");
    assert!(ms.len() >= 2, "the clean camera recorded");
    for w in ms.windows(2) {
        assert_eq!(
            w[0].end_ns, w[1].start_ns,
            "clean: a gap while the others misbehaved"
        );
    }
    assert!(unit.manifests(&store, "junk").is_empty());
    assert!(store.verify(true).unwrap().is_empty());
}

/// Frame times a camera's timestamps cannot break: one camera gets a second viewer (ffmpeg
/// copying its stream for 10 s from 8 s in, as a visit's `selftest` or a neighbour's NVR
/// would), the other restarts its timestamps every 8 s. Every segment's frames have strictly
/// increasing decode times that span its signed range, segments follow on, ffmpeg decodes
/// them without a complaint, and the recording reaches the stop.
#[test]
fn a_second_viewer_and_timestamps_that_jump_back_keep_frame_times_increasing() {
    let viewed = Camera::start(&[]);
    let jumping = Camera::start(&["--jump-back-every", "8"]);
    let mut unit = Unit::new(&Cam::front_and_rear(viewed.url(), jumping.url()));
    unit.start();
    unit.wait_connected(2);
    // The viewer joins 8 s into the recording.
    wait_footage(&unit, "front", now_ns(), 8);
    let copy = unit.dir.path().join("viewer.ts");
    let viewer = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-rtsp_transport", "tcp", "-i", &viewed.url()])
        .args(["-t", "10", "-c", "copy", "-f", "mpegts", "-y"])
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        viewer.status.success(),
        "the second viewer: {}",
        String::from_utf8_lossy(&viewer.stderr)
    );
    wait_for(
        "three segments of each camera",
        Duration::from_secs(60),
        || segment_files(&unit, "front") >= 3 && segment_files(&unit, "rear") >= 3,
    );
    // The segments being written hold several frames when the recorder stops (one frame would
    // have no span to check).
    wait_for(
        "the next segments under way",
        Duration::from_secs(30),
        || {
            segment_partial_bytes(&unit, "front") > 65_552
                && segment_partial_bytes(&unit, "rear") > 65_552
        },
    );
    let stopped = now_ns();
    unit.stop();
    let log = unit.log();
    let store = unit.store();
    for camera in ["front", "rear"] {
        let ms = unit.manifests(&store, camera);
        let mut last_dts: Option<u64> = None;
        for m in &ms {
            let what = format!("{camera}/{}", m.seq);
            assert!(
                m.end_ns > m.start_ns,
                "{what}: its signed range is not positive"
            );
            let ts = unit.decrypt(&store, camera, m.seq);
            let v = rdc_format::ts::read_video(&std::fs::read(&ts).unwrap()).unwrap();
            assert_eq!(
                rdc_format::ts::frame_time_problem(&v, Some(m.end_ns - m.start_ns)),
                None,
                "{what}:\n{log}"
            );
            let p = probe(&ts);
            assert!(p.decode_errors.is_empty(), "{what}: {:?}", p.decode_errors);
            if let (Some(l), Some(first)) = (last_dts, v.units.first()) {
                let step = rdc_format::ts::ticks_since(first.dts, l);
                assert!(
                    step > 0 && step < rdc_format::ts::TS_WRAP / 2,
                    "{what}: its first frame is not after the previous segment's last"
                );
            }
            last_dts = (m.ended == Ended::Cut).then(|| v.units.last().unwrap().dts);
        }
        let end = ms.last().unwrap().end_ns;
        assert!(
            (stopped - end).abs() < 2_500_000_000,
            "{camera}: the recording ends {:.3} s before the stop",
            (stopped - end) as f64 / 1e9
        );
    }
}
