//! Which Kubernetes pod, container and systemd unit a process belongs to, read from its cgroup
//! path (as `/proc/PID/cgroup` prints it). Pure: no I/O.
//!
//! Path forms handled, cgroup v1 and v2 alike (the path is the same string in both; v1 repeats
//! it per controller):
//! - kubelet with the cgroupfs driver: `/kubepods/burstable/pod<UID>/<ID>` (the guaranteed
//!   class has no QoS level: `/kubepods/pod<UID>/<ID>`);
//! - kubelet with the systemd driver: `/kubepods.slice/kubepods-burstable.slice/
//!   kubepods-burstable-pod<UID with _ for ->.slice/cri-containerd-<ID>.scope` (also `crio-`,
//!   `docker-`);
//! - containerd's own form under a service: `…/kubepods-burstable-pod<UID>.slice:cri-containerd:<ID>`;
//! - Docker and Podman outside Kubernetes: `/docker/<ID>`, `/system.slice/docker-<ID>.scope`,
//!   `/machine.slice/libpod-<ID>.scope`;
//! - systemd units: the innermost `*.service` or `*.scope` component
//!   (`/system.slice/postgresql@15-main.service`, `/user.slice/user-1000.slice/session-3.scope`).
//!
//! Conmon's scopes (`crio-conmon-<ID>.scope`, `libpod-conmon-<ID>.scope`) hold the container
//! monitor, not the container: they give no container ID.

pub use crate::model::Workload;

/// Reads a cgroup path such as `/kubepods/burstable/pod<UID>/<ID>`.
pub fn parse(path: &str) -> Workload {
    let mut w = Workload::default();
    let mut under_kubepods = false;
    for component in path.split('/').filter(|c| !c.is_empty()) {
        // containerd's `slice:prefix:id` form puts three fields in one component.
        let mut fields = component.splitn(3, ':');
        let first = fields.next().unwrap_or_default();
        if let (Some(prefix), Some(id)) = (fields.next(), fields.next()) {
            if is_runtime_prefix(prefix) && is_container_id(id) {
                w.container_id = Some(id.to_string());
            }
        }
        if first.starts_with("kubepods") {
            under_kubepods = true;
        }
        if under_kubepods {
            if let Some(uid) = pod_uid(first) {
                w.pod_uid = Some(uid);
            }
        }
        if let Some(id) = container_id(first) {
            w.container_id = Some(id.to_string());
        }
        if first.ends_with(".service") || first.ends_with(".scope") {
            w.unit = Some(first.to_string());
        }
    }
    w
}

/// The pod's own cgroup in a process's cgroup path: the path up to its `pod<UID>` component
/// (the containers are its children). None outside a pod.
pub fn pod_cgroup(path: &str) -> Option<&str> {
    let mut under_kubepods = false;
    let mut end = 0;
    for component in path.split('/') {
        end += component.len();
        let first = component.split(':').next().unwrap_or_default();
        if first.starts_with("kubepods") {
            under_kubepods = true;
        }
        // containerd's `slice:prefix:id` form names the pod in a component that is no cgroup
        // of its own.
        if under_kubepods && pod_uid(first).is_some() && first == component {
            return Some(&path[..end]);
        }
        end += 1; // the slash
    }
    None
}

/// `pod<UID>` (cgroupfs driver) or `kubepods[-QOS]-pod<UID_with_underscores>.slice` (systemd).
fn pod_uid(component: &str) -> Option<String> {
    let rest = match component.strip_suffix(".slice") {
        Some(slice) => &slice[slice.rfind("-pod")? + 4..],
        None => component.strip_prefix("pod")?,
    };
    let uid = rest.replace('_', "-");
    is_pod_uid(&uid).then_some(uid)
}

/// A UUID (8-4-4-4-12 hex digits), or 32 hex digits without dashes (static pods' UIDs are a
/// hash of their manifest).
fn is_pod_uid(s: &str) -> bool {
    let hex: String = s.chars().filter(|&c| c != '-').collect();
    let groups: Vec<usize> = s.split('-').map(str::len).collect();
    hex.len() == 32
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && (groups == [32] || groups == [8, 4, 4, 4, 12])
}

/// Runtimes' scope prefixes (systemd driver) and containerd's `slice:prefix:id` prefixes.
const RUNTIME_PREFIXES: [&str; 4] = ["cri-containerd", "crio", "docker", "libpod"];

fn is_runtime_prefix(p: &str) -> bool {
    RUNTIME_PREFIXES.contains(&p)
}

/// `<ID>`, `<prefix>-<ID>` or `<prefix>-<ID>.scope` for a runtime prefix.
fn container_id(component: &str) -> Option<&str> {
    if is_container_id(component) {
        return Some(component);
    }
    let name = component.strip_suffix(".scope").unwrap_or(component);
    let (prefix, id) = name.rsplit_once('-')?;
    (is_runtime_prefix(prefix) && is_container_id(id)).then_some(id)
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f0d7bd5e0a14c6d1f6e9e2b3c8a7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c";
    const UID: &str = "0b3c2d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e";

    fn w(pod: Option<&str>, container: Option<&str>, unit: Option<&str>) -> Workload {
        Workload {
            pod_uid: pod.map(str::to_string),
            container_id: container.map(str::to_string),
            unit: unit.map(str::to_string),
        }
    }

    #[test]
    fn kubelet_cgroupfs_driver() {
        assert_eq!(
            parse(&format!("/kubepods/burstable/pod{UID}/{ID}")),
            w(Some(UID), Some(ID), None)
        );
        // Guaranteed pods have no QoS level.
        assert_eq!(
            parse(&format!("/kubepods/pod{UID}/{ID}")),
            w(Some(UID), Some(ID), None)
        );
        // The pod's own cgroup (a process moved there, or the pod-level memory.stat).
        assert_eq!(
            parse(&format!("/kubepods/besteffort/pod{UID}")),
            w(Some(UID), None, None)
        );
        // CRI-O with cgroupfs names the container crio-<ID>, no .scope.
        assert_eq!(
            parse(&format!("/kubepods/burstable/pod{UID}/crio-{ID}")),
            w(Some(UID), Some(ID), None)
        );
    }

    #[test]
    fn kubelet_systemd_driver() {
        let uid_ = UID.replace('-', "_");
        for (runtime, scope) in [
            ("cri-containerd", format!("cri-containerd-{ID}.scope")),
            ("crio", format!("crio-{ID}.scope")),
            ("docker", format!("docker-{ID}.scope")),
        ] {
            let path = format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/{scope}"
            );
            assert_eq!(
                parse(&path),
                w(Some(UID), Some(ID), Some(&scope)),
                "{runtime}"
            );
        }
        // Guaranteed: kubepods-pod<UID>.slice directly under kubepods.slice.
        assert_eq!(
            parse(&format!(
                "/kubepods.slice/kubepods-pod{uid_}.slice/cri-containerd-{ID}.scope"
            )),
            w(
                Some(UID),
                Some(ID),
                Some(&format!("cri-containerd-{ID}.scope"))
            )
        );
    }

    #[test]
    fn containerd_colon_form() {
        let uid_ = UID.replace('-', "_");
        assert_eq!(
            parse(&format!(
                "/system.slice/containerd.service/kubepods-besteffort-pod{uid_}.slice:cri-containerd:{ID}"
            )),
            w(Some(UID), Some(ID), Some("containerd.service"))
        );
    }

    #[test]
    fn conmon_is_not_the_container() {
        let uid_ = UID.replace('-', "_");
        let scope = format!("crio-conmon-{ID}.scope");
        assert_eq!(
            parse(&format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/{scope}"
            )),
            w(Some(UID), None, Some(&scope))
        );
        assert_eq!(
            parse(&format!("/machine.slice/libpod-conmon-{ID}.scope")).container_id,
            None
        );
    }

    #[test]
    fn docker_and_podman_without_kubernetes() {
        assert_eq!(parse(&format!("/docker/{ID}")), w(None, Some(ID), None));
        let scope = format!("docker-{ID}.scope");
        assert_eq!(
            parse(&format!("/system.slice/{scope}")),
            w(None, Some(ID), Some(&scope))
        );
        let scope = format!("libpod-{ID}.scope");
        assert_eq!(
            parse(&format!("/machine.slice/{scope}")),
            w(None, Some(ID), Some(&scope))
        );
        // Docker in Docker: the innermost container is the process's.
        let inner = ID.replace('4', "5");
        assert_eq!(
            parse(&format!("/docker/{ID}/docker/{inner}")).container_id,
            Some(inner)
        );
    }

    #[test]
    fn systemd_units() {
        assert_eq!(
            parse("/system.slice/postgresql@15-main.service"),
            w(None, None, Some("postgresql@15-main.service"))
        );
        assert_eq!(
            parse("/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-firefox-1234.scope"),
            w(None, None, Some("app-gnome-firefox-1234.scope"))
        );
        assert_eq!(
            parse("/user.slice/user-1000.slice/session-3.scope"),
            w(None, None, Some("session-3.scope"))
        );
        assert_eq!(parse("/init.scope"), w(None, None, Some("init.scope")));
        // Escaped unit names are kept as systemd spells them.
        assert_eq!(
            parse("/system.slice/system-getty.slice/getty@tty1.service").unit,
            Some("getty@tty1.service".into())
        );
        assert_eq!(
            parse(r"/system.slice/dev-disk-by\x2duuid-1234.swap").unit,
            None
        );
        // Slices alone are not units that run processes.
        assert_eq!(parse("/system.slice"), Workload::default());
        assert_eq!(parse("/"), Workload::default());
    }

    #[test]
    fn cgroup_namespace_relative_paths() {
        // Seen from inside a cgroup namespace, the path is relative to it; outside it, `..`.
        assert_eq!(
            parse(&format!("/../../kubepods/burstable/pod{UID}/{ID}")),
            w(Some(UID), Some(ID), None)
        );
        // Inside the container's own namespace: nothing to go by.
        assert_eq!(parse("/"), Workload::default());
    }

    #[test]
    fn look_alikes_are_refused() {
        // pod<UID> outside kubepods (a user's cgroup named like one).
        assert_eq!(parse(&format!("/user.slice/pod{UID}")).pod_uid, None);
        // Wrong lengths, upper case, non-hex.
        assert_eq!(parse(&format!("/kubepods/pod{}", &UID[1..])).pod_uid, None);
        assert_eq!(parse(&format!("/kubepods/pod{}x", &UID[1..])).pod_uid, None);
        assert_eq!(parse(&format!("/docker/{}", &ID[1..])).container_id, None);
        assert_eq!(
            parse(&format!("/docker/{}", ID.to_uppercase())).container_id,
            None
        );
        assert_eq!(
            parse(&format!("/system.slice/foo-{ID}.scope")).container_id,
            None
        );
        assert_eq!(parse("/kubepods/podX/notanid").pod_uid, None);
        // Static pods: 32 hex digits, no dashes.
        assert_eq!(
            parse("/kubepods/burstable/pod6e1f0b5a2c3d4e5f6a7b8c9d0e1f2a3b").pod_uid,
            Some("6e1f0b5a2c3d4e5f6a7b8c9d0e1f2a3b".into())
        );
    }

    /// Whole `/proc/PID/cgroup` files of a pod's process: a hybrid host's v1 memory line
    /// (kubelet's cgroupfs driver) and a v2 host's line (systemd driver, containerd).
    #[test]
    fn fixtures_v1_and_v2() {
        use crate::collect::cgroup::parse_process;
        use crate::model::CgroupVersion;
        let uid = "8a1e3f7c-2b9d-4c61-9e0a-5d7f3b2c1a90";
        let id = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let v1 = include_bytes!("../../tests/fixtures/cgroup_k8s_v1.txt");
        let path = parse_process(v1, CgroupVersion::V1).unwrap();
        assert_eq!(parse(&path), w(Some(uid), Some(id), None));
        let v2 = include_bytes!("../../tests/fixtures/cgroup_k8s_v2.txt");
        let path = parse_process(v2, CgroupVersion::V2).unwrap();
        let scope = format!("cri-containerd-{id}.scope");
        assert_eq!(parse(&path), w(Some(uid), Some(id), Some(&scope)));
        // The project's other fixtures: plain systemd services.
        let hybrid = include_bytes!("../../tests/fixtures/cgroup_hybrid.txt");
        let path = parse_process(hybrid, CgroupVersion::V1).unwrap();
        assert_eq!(parse(&path), w(None, None, Some("php8.2-fpm.service")));
    }

    #[test]
    fn pod_cgroups() {
        let uid_ = UID.replace('-', "_");
        assert_eq!(
            pod_cgroup(&format!("/kubepods/burstable/pod{UID}/{ID}")),
            Some(format!("/kubepods/burstable/pod{UID}").as_str())
        );
        let pod =
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice");
        assert_eq!(
            pod_cgroup(&format!("{pod}/cri-containerd-{ID}.scope")),
            Some(pod.as_str())
        );
        assert_eq!(pod_cgroup(&pod), Some(pod.as_str()));
        assert_eq!(
            pod_cgroup(&format!("/test/kubepods/pod{UID}/{ID}")),
            Some(format!("/test/kubepods/pod{UID}").as_str())
        );
        assert_eq!(
            pod_cgroup(&format!(
                "/system.slice/containerd.service/kubepods-besteffort-pod{uid_}.slice:cri-containerd:{ID}"
            )),
            None
        );
        assert_eq!(pod_cgroup("/system.slice/foo.service"), None);
        assert_eq!(pod_cgroup(&format!("/user.slice/pod{UID}")), None);
    }

    #[test]
    fn hostile_paths_do_not_panic() {
        for p in [
            "",
            "::",
            ":::",
            "/-pod.slice",
            "/kubepods/-pod.slice",
            "/kubepods.slice/kubepods-pod.slice",
            "/.scope",
            "/a:b",
            "/kubepods/pod\u{e9}\u{e9}",
            "////",
        ] {
            let _ = parse(p);
            let _ = pod_cgroup(p);
        }
    }
}
