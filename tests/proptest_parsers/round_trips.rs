//! Well-formed text parses back to exactly what was printed.

use super::*;

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn maps_kernel_format_round_trips(cases in prop::collection::vec(maps_case(), 1..20)) {
        let lines: Vec<Vec<u8>> = cases.iter().map(kernel_maps_line).collect();
        for (c, line) in cases.iter().zip(&lines) {
            prop_assert_eq!(maps::parse_line(line), Some(c.entry.clone()));
        }
        let all: Vec<maps::MapsEntry> = maps::parse(&join_lines(&lines)).collect();
        let want: Vec<maps::MapsEntry> = cases.into_iter().map(|c| c.entry).collect();
        prop_assert_eq!(all, want);
    }

    /// Lines the parser rejects, spliced anywhere into a real capture, change nothing else:
    /// one bad line never hides or alters its neighbours.
    #[test]
    fn maps_bad_lines_do_not_disturb_good_ones(
        junk in prop::collection::vec((any::<Index>(), garbage_line()), 1..10)
    ) {
        let mut lines: Vec<Vec<u8>> = MAPS.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        for (at, j) in junk {
            if maps::parse_line(&j).is_none() {
                lines.insert(at.index(lines.len() + 1), j);
            }
        }
        let want: Vec<_> = maps::parse(MAPS).collect();
        let got: Vec<_> = maps::parse(&lines.join(&b'\n')).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn smaps_kernel_format_round_trips(cases in prop::collection::vec(smaps_case(), 1..12)) {
        let text: Vec<u8> = cases.iter().flat_map(kernel_smaps).collect();
        let got = smaps::parse(&text);
        prop_assert_eq!(got.len(), cases.len());
        for (v, c) in got.iter().zip(&cases) {
            let [rss, pss, pc, pd, swap] = c.kb;
            prop_assert_eq!(&v.entry, &c.map.entry);
            prop_assert_eq!(v.rss, rss * 1024);
            prop_assert_eq!(v.pss, pss * 1024);
            prop_assert_eq!(v.private, (pc + pd) * 1024);
            prop_assert_eq!(v.swap, swap * 1024);
        }
    }

    /// Lines that are neither a mapping header nor a `Key:` field, spliced into a real capture,
    /// change nothing.
    #[test]
    fn smaps_foreign_lines_do_not_disturb(
        junk in prop::collection::vec((any::<Index>(), garbage_line()), 1..10)
    ) {
        let mut lines: Vec<Vec<u8>> = SMAPS.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        for (at, j) in junk {
            let first = j.split(|&b| b == b' ').next().unwrap_or_default();
            if maps::parse_line(&j).is_none() && !first.ends_with(b":") {
                lines.insert(at.index(lines.len() + 1), j);
            }
        }
        prop_assert_eq!(smaps::parse(&lines.join(&b'\n')), smaps::parse(SMAPS));
    }

    #[test]
    fn status_kernel_format_round_trips(
        name in prop::collection::vec(any::<u8>().prop_filter("one line", |b| *b != b'\n'), 0..64),
        ppid in 0..i32::MAX,
        uid in any::<u32>(),
        kb in prop::option::weighted(0.9, prop::array::uniform5(0u64..(u64::MAX >> 10))),
    ) {
        let st = status::parse(&status_text(&name, ppid, uid, kb)).expect("well-formed status");
        prop_assert_eq!(&st.name, &String::from_utf8_lossy(&name).into_owned());
        prop_assert_eq!(st.ppid, ppid);
        prop_assert_eq!(st.uid, uid);
        match kb {
            Some(v) => {
                prop_assert_eq!(st.vm_rss, Some(v[0] * 1024));
                prop_assert_eq!(
                    [st.rss_anon, st.rss_file, st.rss_shmem, st.vm_swap],
                    [v[1] * 1024, v[2] * 1024, v[3] * 1024, v[4] * 1024]
                );
            }
            None => prop_assert_eq!(st.vm_rss, None),
        }
    }

    /// Lines without a colon or with keys shmwho does not read change nothing.
    #[test]
    fn status_unknown_lines_do_not_disturb(
        junk in prop::collection::vec((any::<Index>(), garbage_line()), 1..10)
    ) {
        const READ: &[&[u8]] = &[b"Name", b"PPid", b"Uid", b"VmRSS", b"RssAnon", b"RssFile", b"RssShmem", b"VmSwap"];
        let mut lines: Vec<Vec<u8>> = STATUS.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        for (at, j) in junk {
            let key = j.split(|&b| b == b':').next().unwrap_or_default();
            if !j.contains(&b':') || !READ.contains(&key) {
                lines.insert(at.index(lines.len() + 1), j);
            }
        }
        prop_assert_eq!(status::parse(&lines.join(&b'\n')), status::parse(STATUS));
    }

    #[test]
    fn stat_any_command_round_trips(
        comm in prop::collection::vec(any::<u8>().prop_filter("no NUL", |b| *b != 0), 0..32),
        ppid in 0..i32::MAX,
        start in any::<u64>(),
    ) {
        let st = stat::parse(&stat_text(&comm, ppid, start)).expect("well-formed stat");
        prop_assert_eq!(&st.comm, &String::from_utf8_lossy(&comm).into_owned());
        prop_assert_eq!(st.ppid, ppid);
        prop_assert_eq!(st.start_ticks, start);
    }

    #[test]
    fn sysv_kernel_format_round_trips(segs in prop::collection::vec(sysv_segment(), 0..20)) {
        let text: String = std::iter::once(SYSV_HEADER.to_string())
            .chain(segs.iter().map(kernel_sysv_row))
            .collect();
        prop_assert_eq!(sysv::parse(text.as_bytes()), segs);
    }

    /// Rows of the wrong width (truncated, extra columns) are skipped; the others survive.
    #[test]
    fn sysv_bad_rows_do_not_disturb(
        segs in prop::collection::vec(sysv_segment(), 1..10),
        junk in prop::collection::vec((any::<Index>(), garbage_line()), 1..10),
    ) {
        let mut rows: Vec<String> = segs.iter().map(kernel_sysv_row).collect();
        for (at, j) in junk {
            let j = String::from_utf8_lossy(&j).into_owned();
            if j.split_whitespace().count() != 16 {
                rows.insert(at.index(rows.len() + 1), format!("{j}\n"));
            }
        }
        let text = format!("{SYSV_HEADER}{}", rows.concat());
        prop_assert_eq!(sysv::parse(text.as_bytes()), segs);
    }

    #[test]
    fn mountinfo_escaped_mount_points_round_trip(
        points in prop::collection::vec((mount_point_bytes(), 0u32..4096, 0u32..(1 << 20)), 1..8),
        at in any::<Index>(),
    ) {
        use std::os::unix::ffi::OsStrExt;
        let base: Vec<Vec<u8>> = MOUNTINFO.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        let ours: Vec<Vec<u8>> = points
            .iter()
            .enumerate()
            .map(|(i, (mp, maj, min))| {
                [
                    format!("{} 25 {maj}:{min} / ", 900 + i).as_bytes(),
                    &mangle_bytes(mp),
                    b" rw,nosuid,nodev - tmpfs tmpfs rw,size=1024k",
                ]
                .concat()
            })
            .collect();
        let k = at.index(base.len() + 1);
        let mut lines = base[..k].to_vec();
        lines.extend(ours);
        lines.extend_from_slice(&base[k..]);
        let got = mountinfo::tmpfs(&lines.join(&b'\n'));
        let mut want = mountinfo::tmpfs(&base[..k].join(&b'\n'));
        want.extend(points.iter().enumerate().map(|(i, (mp, maj, min))| mountinfo::MountEntry {
            id: 900 + i as u32,
            parent: 25,
            dev: rustix::fs::makedev(*maj, *min),
            root: b"/".to_vec(),
            mount_point: PathBuf::from(std::ffi::OsStr::from_bytes(mp)),
            fs_type: "tmpfs".to_string(),
            super_options: "rw,size=1024k".to_string(),
        }));
        want.extend(mountinfo::tmpfs(&base[k..].join(&b'\n')));
        prop_assert_eq!(got, want);
    }

    #[test]
    fn hidepid_options(
        value in prop::sample::select(vec!["0", "1", "2", "4", "off", "noaccess", "invisible", "ptraceable"]),
        extra in "(,[a-z]{1,8}=[0-9]{1,4})?",
        mp in prop::sample::select(vec!["/proc", "/proc2", "/mnt/proc"]),
    ) {
        let line = format!("22 1 0:21 / {mp} rw,nosuid,nodev,noexec,relatime - proc proc rw{extra},hidepid={value}\n");
        let text = [MOUNTINFO, line.as_bytes()].concat();
        let hidden = mp == "/proc" && !matches!(value, "0" | "off");
        prop_assert_eq!(mountinfo::proc_hidepid(&text), hidden);
    }

    #[test]
    fn btime_found_among_other_lines(
        btime in any::<i64>().prop_map(i64::unsigned_abs).prop_map(|v| (v >> 1) as i64),
        before in prop::collection::vec("[a-z_]{1,10}( [0-9]{1,9}){1,8}", 0..10),
    ) {
        let text = format!("{}\nbtime {btime}\nprocesses 1\n", before.join("\n"));
        prop_assert_eq!(shmwho::collect::parse_btime(text.as_bytes()), Some(btime));
    }

    /// fd link targets and mount points: a target is under a mount point exactly when the
    /// mount point is a leading run of whole components.
    #[test]
    fn fd_targets_under_mount_points(
        mp in prop::collection::vec("[a-z \n\\\\]{1,6}", 1..4).prop_map(|c| format!("/{}", c.join("/"))),
        rest in "[a-z ]{0,6}(/[a-z ]{0,6}){0,3}",
        glue in prop::sample::select(vec!["/", "", "x", " ", "\n"]),
    ) {
        let target = format!("{mp}{glue}{rest}");
        let expect = glue == "/" || (glue.is_empty() && rest.is_empty()) || (glue.is_empty() && rest.starts_with('/'));
        prop_assert_eq!(shmwho::collect::under(target.as_bytes(), mp.as_bytes()), expect);
        prop_assert!(shmwho::collect::under(target.as_bytes(), b"/"));
    }
}
