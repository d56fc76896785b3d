//! Users: who rbuild runs as ([`is_root`], [`rootless_ids`]), and the users and groups
//! of an image: its `/etc/passwd` and `/etc/group` read, names resolved to numbers. COPY and ADD `--chown` (on the image's files, before the step) and the
//! sandbox (inside the container, for USER) both resolve through here.

/// Whether this process runs as root (its files' owners can be set; a sandbox needs no
/// user namespace).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Whether this process runs in a user namespace (its uid map is not the whole identity
/// map of the host's): rbuild's own namespace of subordinate ids, or a rootless container's.
/// Root there owns its namespaces but not the host's files, cgroups or trusted xattrs.
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
        .unwrap_or(false)
}

/// Whether this process is the host's root (root, and not in a user namespace).
pub fn is_host_root() -> bool {
    is_root() && !in_user_namespace()
}

/// When rbuild is not root, the caller's user and group: root in the sandbox's user
/// namespace and in the image.
pub fn rootless_ids() -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    if is_root() {
        return None;
    }
    std::fs::metadata("/proc/self").ok().map(|m| (m.uid(), m.gid()))
}

/// One line of `/etc/passwd` (`name:x:uid:gid:gecos:home:shell`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdLine<'a> {
    /// Its fields, split on `:`.
    fields: Vec<&'a str>,
}

impl<'a> PasswdLine<'a> {
    /// The user name.
    pub fn name(&self) -> &'a str {
        self.fields[0]
    }
    /// The user ID as written.
    pub fn uid(&self) -> &'a str {
        self.fields[2]
    }
    /// The primary group ID as written (empty when the line has none).
    pub fn gid(&self) -> &'a str {
        self.fields.get(3).copied().unwrap_or("")
    }
    /// The home directory (empty when the line has none).
    pub fn home(&self) -> &'a str {
        self.fields.get(5).copied().unwrap_or("")
    }
    /// Whether the line has all seven fields.
    pub fn complete(&self) -> bool {
        self.fields.len() >= 7
    }
}

/// One line of `/etc/group` (`name:x:gid:member,member`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLine<'a> {
    fields: Vec<&'a str>,
}

impl<'a> GroupLine<'a> {
    /// The group name.
    pub fn name(&self) -> &'a str {
        self.fields[0]
    }
    /// The group ID as written.
    pub fn gid(&self) -> &'a str {
        self.fields[2]
    }
    /// Whether `user` is listed as a member.
    pub fn has_member(&self, user: &str) -> bool {
        self.fields.get(3).is_some_and(|m| m.split(',').any(|m| m == user))
    }
}

/// The lines of a passwd file with at least a name, a password and an ID.
pub fn passwd_lines(text: &str) -> Vec<PasswdLine<'_>> {
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() > 2)
        .map(|fields| PasswdLine { fields })
        .collect()
}

/// The lines of a group file with at least a name, a password and an ID.
pub fn group_lines(text: &str) -> Vec<GroupLine<'_>> {
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() > 2)
        .map(|fields| GroupLine { fields })
        .collect()
}

/// `--chown=user[:group]` as numbers, as BuildKit reads it: numbers as they are, names
/// looked up in `passwd` and `group` (the image's files); an empty user is root. Without
/// a group (or with an empty one), a user named in `passwd` gets its primary group, and
/// a number the group of the same number.
pub fn chown_ids(spec: &str, passwd: &str, group: &str) -> Result<(u32, u32), String> {
    let (user, group_name) = spec.split_once(':').unwrap_or((spec, ""));
    let (uid, primary) = if user.is_empty() {
        (0, 0)
    } else if let Ok(n) = user.parse::<u32>() {
        (n, n)
    } else {
        let lines = passwd_lines(passwd);
        let line = lines.iter().find(|l| l.name() == user).ok_or_else(|| {
            format!("unable to find user {user}: no matching entries in /etc/passwd")
        })?;
        let uid = line.uid().parse().map_err(|_| format!("user {user} has no valid ID"))?;
        (uid, line.gid().parse().unwrap_or(uid))
    };
    let gid = if group_name.is_empty() {
        primary
    } else if let Ok(n) = group_name.parse::<u32>() {
        n
    } else {
        group_lines(group)
            .iter()
            .find(|l| l.name() == group_name)
            .and_then(|l| l.gid().parse().ok())
            .ok_or_else(|| {
                format!("unable to find group {group_name}: no matching entries in /etc/group")
            })?
    };
    Ok((uid, gid))
}

/// Who a process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User ID.
    pub uid: u32,
    /// Primary group ID.
    pub gid: u32,
    /// Every group: the primary one first, then those listing the user as a member.
    pub groups: Vec<u32>,
    /// The home directory (`/` when the user has no passwd entry).
    pub home: String,
}

/// `USER user[:group]` (names or numbers; empty is root) resolved as BuildKit and Docker
/// resolve it when the command starts: a user found by name or number in `passwd` gets
/// its primary group, its home and the groups that list it; an unknown number is used as
/// it is, with group 0. An explicit group replaces the primary one and adds no others.
pub fn identity(spec: &str, passwd: &str, group: &str) -> Result<Identity, String> {
    let (user, group_name) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let lines = passwd_lines(passwd);
    let entry = lines.iter().find(|l| l.complete() && (l.name() == user || l.uid() == user));
    let (uid, mut gid, name, home) = match (entry, user.parse::<u32>()) {
        (Some(l), _) => (
            l.uid().parse().unwrap_or(0),
            l.gid().parse().unwrap_or(0),
            l.name().to_string(),
            l.home().to_string(),
        ),
        (None, Ok(uid)) => (uid, 0, String::new(), "/".to_string()),
        (None, Err(_)) => {
            return Err(format!("unable to find user {user}: no matching entries in passwd file"))
        }
    };
    let groups_file = group_lines(group);
    if let Some(g) = group_name {
        gid = match groups_file.iter().find(|l| l.name() == g || l.gid() == g) {
            Some(l) => l.gid().parse().unwrap_or(0),
            None => g.parse().map_err(|_| {
                format!("unable to find group {g}: no matching entries in group file")
            })?,
        };
    }
    let mut groups = vec![gid];
    if !name.is_empty() && group_name.is_none() {
        for l in groups_file.iter().filter(|l| l.has_member(&name)) {
            if let Ok(g) = l.gid().parse::<u32>() {
                if !groups.contains(&g) {
                    groups.push(g);
                }
            }
        }
    }
    Ok(Identity { uid, gid, groups, home })
}

#[cfg(test)]
mod tests {
    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/sh\nshort:x:7\n";
    const GROUP: &str = "root:x:0:\napps:x:1001:\nextra:x:2000:app,other\n";

    #[test]
    fn chown_takes_numbers_and_names() {
        assert_eq!(super::chown_ids("42:43", "", ""), Ok((42, 43)));
        // A name without a group gets its primary group (BuildKit); a number its own.
        assert_eq!(super::chown_ids("app", PASSWD, GROUP), Ok((1000, 1001)));
        assert_eq!(super::chown_ids("1000", PASSWD, GROUP), Ok((1000, 1000)));
        assert_eq!(
            super::chown_ids(":", PASSWD, GROUP),
            Ok((0, 0)),
            "--chown=${{UNSET}}:${{UNSET}}"
        );
        assert_eq!(super::chown_ids("app:extra", PASSWD, GROUP), Ok((1000, 2000)));
        assert_eq!(super::chown_ids("short", PASSWD, GROUP), Ok((7, 7)));
        let err = super::chown_ids("nosuch", PASSWD, GROUP).unwrap_err();
        assert!(err.contains("unable to find user nosuch"), "{err}");
    }

    #[test]
    fn identity_has_home_and_groups() {
        let app = super::identity("app", PASSWD, GROUP).unwrap();
        assert_eq!(
            (app.uid, app.gid, app.groups, app.home.as_str()),
            (1000, 1001, vec![1001, 2000], "/home/app")
        );
        let by_number = super::identity("1000", PASSWD, GROUP).unwrap();
        assert_eq!(by_number.uid, 1000);
        let unknown = super::identity("4242:4343", PASSWD, GROUP).unwrap();
        assert_eq!((unknown.uid, unknown.gid, unknown.home.as_str()), (4242, 4343, "/"));
        assert_eq!(super::identity("4242", PASSWD, GROUP).unwrap().gid, 0, "BuildKit: group 0");
        let grouped = super::identity("app:0", PASSWD, GROUP).unwrap();
        assert_eq!(grouped.groups, vec![0], "an explicit group adds no supplementary ones");
        assert_eq!(super::identity("", PASSWD, GROUP).unwrap().uid, 0);
        assert!(super::identity("short", PASSWD, GROUP).is_err(), "an incomplete line is no user");
    }
}
