//! `Admin`: one superuser connection and the operations the charms need.
//!
//! Every identifier goes through `escape_identifier` and every literal through
//! `escape_literal` or a bind parameter. Passwords reach the server only as
//! verifiers, in transactions that keep them out of the server log.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, Config, GenericClient, NoTls, Transaction};
use postgres_protocol::escape::{escape_identifier as ident, escape_literal as literal};

use crate::names::{
    Attribute, DatabaseName, DatabasePrefix, Extension, ExtraRoles, MemberRole, RoleName,
    CHARMED_ROLES, GRANTABLE_PREDEFINED,
};
use crate::permissions::{Permission, ResourceType};
use crate::verifier;

/// Where and as whom to connect. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectInfo {
    /// Host name or address; a path starting with `/` is a unix socket directory.
    pub host: String,
    /// TCP port (also names the unix socket).
    pub port: u16,
    /// Role to log in as.
    pub user: String,
    /// That role's password.
    pub password: String,
    /// Database to connect to.
    pub dbname: String,
    /// How long to wait for the server to answer.
    pub connect_timeout: Duration,
}

impl ConnectInfo {
    /// The same server and credentials, for another database.
    pub fn for_database(&self, dbname: &str) -> ConnectInfo {
        ConnectInfo {
            dbname: dbname.to_string(),
            ..self.clone()
        }
    }

    /// Opens a connection (without TLS).
    pub fn connect(&self) -> Result<Client> {
        Config::new()
            .host(&self.host)
            .port(self.port)
            .user(&self.user)
            .password(&self.password)
            .dbname(&self.dbname)
            .connect_timeout(self.connect_timeout)
            .application_name("postgres-admin")
            .connect(NoTls)
            .map_err(|source| AdminError::Connect {
                target: self.to_string(),
                source,
            })
    }
}

impl fmt::Debug for ConnectInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectInfo")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("dbname", &self.dbname)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl fmt::Display for ConnectInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (user, host, port, db) = (&self.user, &self.host, self.port, &self.dbname);
        write!(f, "database {db:?} on {host}:{port} as {user:?}")
    }
}

/// What went wrong while administering PostgreSQL. Messages say what was being
/// done, never the SQL sent and never a password.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The server could not be reached or refused the login.
    #[error("cannot connect to {target}: {}", describe(.source))]
    Connect {
        target: String,
        #[source]
        source: postgres::Error,
    },
    /// A statement failed.
    #[error("{action} failed: {}", describe(.source))]
    Statement {
        action: String,
        #[source]
        source: postgres::Error,
    },
    /// Refused before sending anything, or the cluster lacks what was asked for.
    #[error("{0}")]
    Invalid(String),
    /// The server answered something this crate cannot read.
    #[error("{action}: unexpected answer {answer:?}")]
    Unexpected { action: String, answer: String },
}

type Result<T> = std::result::Result<T, AdminError>;

/// The group role behind `extra-user-roles: admin`.
pub const ADMIN_GROUP: &str = "admin";

/// The driver's error with the server's message (or the I/O cause) on one line.
fn describe(error: &postgres::Error) -> String {
    let text = match (error.as_db_error(), std::error::Error::source(error)) {
        (Some(db), _) => db.to_string(),
        (None, Some(cause)) => format!("{error}: {cause}"),
        (None, None) => error.to_string(),
    };
    text.replace('\n', "; ")
}

/// Maps a driver error to a failed statement described by `action`.
fn failed(action: impl Into<String>) -> impl FnOnce(postgres::Error) -> AdminError {
    move |source| AdminError::Statement {
        action: action.into(),
        source,
    }
}

/// Runs statements without parameters (one implicit transaction).
fn execute(client: &mut impl GenericClient, sql: &str, action: impl Into<String>) -> Result<()> {
    client.batch_execute(sql).map_err(failed(action))
}

/// Runs a query returning one boolean.
fn flag(client: &mut impl GenericClient, sql: &str, param: &str, action: &str) -> Result<bool> {
    let row = client.query_one(sql, &[&param]).map_err(failed(action))?;
    row.try_get(0).map_err(failed(action))
}

fn role_exists_in(client: &mut impl GenericClient, role: &str) -> Result<bool> {
    let sql = "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)";
    flag(client, sql, role, "looking up a role")
}

/// Why a role a client asked to join cannot be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleIssue {
    /// No such role in the cluster.
    Missing,
    /// It is, or is a member of, a role that can log in, a role with
    /// SUPERUSER, CREATEROLE, REPLICATION or BYPASSRLS, or a predefined role
    /// outside [`GRANTABLE_PREDEFINED`]: joining it would hand out another
    /// user's rights or more than data access.
    TooPowerful,
}

impl fmt::Display for RoleIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RoleIssue::Missing => "no such role",
            RoleIssue::TooPowerful => "grants more than a client may have",
        })
    }
}

/// The roles among `roles` that cannot be granted, and why; one query, names
/// bound as parameters.
fn unusable_roles_in(
    client: &mut impl GenericClient,
    roles: &[MemberRole],
) -> Result<Vec<(MemberRole, RoleIssue)>> {
    let action = "checking the roles asked for";
    let names: Vec<&str> = roles.iter().map(MemberRole::as_str).collect();
    let grantable: Vec<&str> = GRANTABLE_PREDEFINED.to_vec();
    let sql = "SELECT n.name, r.oid IS NULL, COALESCE((
                 SELECT bool_or(s.rolcanlogin OR s.rolsuper OR s.rolcreaterole
                        OR s.rolreplication OR s.rolbypassrls
                        OR (s.rolname LIKE 'pg\\_%' AND s.rolname <> ALL($2::text[])))
                 FROM pg_catalog.pg_roles s
                 WHERE pg_catalog.pg_has_role(r.oid, s.oid, 'MEMBER')), false)
               FROM unnest($1::text[]) AS n(name)
               LEFT JOIN pg_catalog.pg_roles r ON r.rolname = n.name";
    let rows = client
        .query(sql, &[&names, &grantable])
        .map_err(failed(action))?;
    let mut out = Vec::new();
    for row in rows {
        let name: String = row.try_get(0).map_err(failed(action))?;
        let missing: bool = row.try_get(1).map_err(failed(action))?;
        let powerful: bool = row.try_get(2).map_err(failed(action))?;
        let issue = match (missing, powerful) {
            (true, _) => RoleIssue::Missing,
            (false, true) => RoleIssue::TooPowerful,
            (false, false) => continue,
        };
        if let Some(role) = roles.iter().find(|r| r.as_str() == name) {
            out.push((role.clone(), issue));
        }
    }
    Ok(out)
}

/// Grants each of `roles` to `member`, refusing all of them (before any
/// GRANT) when one is missing or too powerful.
fn grant_roles(tx: &mut Transaction, member: &RoleName, roles: &[MemberRole]) -> Result<()> {
    if roles.is_empty() {
        return Ok(());
    }
    if let Some((role, issue)) = unusable_roles_in(tx, roles)?.into_iter().next() {
        return Err(AdminError::Invalid(format!(
            "cannot make {member} a member of {role:?}: {issue}"
        )));
    }
    for role in roles {
        let sql = format!(
            "GRANT {} TO {}",
            ident(role.as_str()),
            ident(member.as_str())
        );
        execute(tx, &sql, format!("granting {role} to {member}"))?;
    }
    Ok(())
}

/// One connection as a superuser (and, for the extensions' work, one per
/// other database, kept for the session).
pub struct Admin {
    info: ConnectInfo,
    client: Client,
    others: BTreeMap<String, Client>,
}

impl Admin {
    /// Connects; `info.user` must be a superuser for most operations.
    pub fn connect(info: &ConnectInfo) -> Result<Admin> {
        Ok(Admin {
            client: info.connect()?,
            info: info.clone(),
            others: BTreeMap::new(),
        })
    }

    /// The server's version, numeric part only (`"15.18"`).
    pub fn server_version(&mut self) -> Result<String> {
        let action = "reading the server version";
        let row = self.client.query_one("SHOW server_version", &[]);
        let row = row.map_err(failed(action))?;
        let full: String = row.try_get(0).map_err(failed(action))?;
        let numeric: String = full
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        match numeric.trim_end_matches('.') {
            "" => Err(AdminError::Unexpected {
                action: action.into(),
                answer: full,
            }),
            version => Ok(version.to_string()),
        }
    }

    /// The cluster's identity: `system_identifier` from `pg_control_system()`.
    /// `initdb` picks it and every replica copies it, so it survives a
    /// failover; a cluster bootstrapped anew has another one.
    pub fn system_identifier(&mut self) -> Result<String> {
        let action = "reading the cluster's system identifier";
        let sql = "SELECT system_identifier FROM pg_catalog.pg_control_system()";
        let row = self.client.query_one(sql, &[]).map_err(failed(action))?;
        let id: i64 = row.try_get(0).map_err(failed(action))?;
        Ok(id.to_string())
    }

    /// The names of all non-template databases, sorted.
    pub fn databases(&mut self) -> Result<Vec<String>> {
        let sql = "SELECT datname::text FROM pg_catalog.pg_database \
                   WHERE NOT datistemplate ORDER BY datname";
        self.names(sql, "listing databases")
    }

    /// Whether a database of that name exists.
    pub fn database_exists(&mut self, name: &str) -> Result<bool> {
        let sql = "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1)";
        flag(&mut self.client, sql, name, "looking up a database")
    }

    /// Whether a role of that name exists.
    pub fn role_exists(&mut self, role: &RoleName) -> Result<bool> {
        role_exists_in(&mut self.client, role.as_str())
    }

    /// Creates the database owned by `owner` unless it exists, and revokes
    /// PUBLIC's default rights on it. Returns whether it was created.
    pub fn create_database(&mut self, db: &DatabaseName, owner: &RoleName) -> Result<bool> {
        let (db_id, owner_id) = (ident(db.as_str()), ident(owner.as_str()));
        let created = !self.database_exists(db.as_str())?;
        if created {
            // CREATE DATABASE copies template1, which no session may hold.
            self.others.clear();
            let sql = format!("CREATE DATABASE {db_id} OWNER {owner_id}");
            execute(&mut self.client, &sql, format!("creating database {db}"))?;
        }
        let sql = format!("REVOKE ALL ON DATABASE {db_id} FROM PUBLIC");
        execute(&mut self.client, &sql, format!("locking database {db}"))?;
        Ok(created)
    }

    /// Creates or updates a login role with exactly the attributes in `extra`
    /// (the others withheld) and its password, then grants the memberships.
    /// All or nothing: a missing membership role leaves the cluster unchanged.
    pub fn create_user(
        &mut self,
        user: &RoleName,
        password: &str,
        extra: &ExtraRoles,
    ) -> Result<()> {
        if password.is_empty() {
            return Err(AdminError::Invalid(format!(
                "empty password for role {user}"
            )));
        }
        let attributes: Vec<String> = Attribute::ALL
            .iter()
            .map(|a| match extra.attributes().contains(a) {
                true => a.keyword().to_string(),
                false => format!("NO{}", a.keyword()),
            })
            .collect();
        let verifier = verifier::scram_sha_256_random_salt(password);
        let options = format!("{} PASSWORD {}", attributes.join(" "), literal(&verifier));
        self.upsert_login_role(user, &options, |tx| {
            grant_roles(tx, user, extra.memberships())
        })
    }

    /// The roles among `roles` that cannot be granted to a client, and why
    /// (missing, or too powerful: see [`RoleIssue`]).
    pub fn unusable_roles(&mut self, roles: &[MemberRole]) -> Result<Vec<(MemberRole, RoleIssue)>> {
        unusable_roles_in(&mut self.client, roles)
    }

    /// Creates a group role (NOLOGIN) unless it exists, and makes it a member
    /// of `member_of`; all or nothing. A role of that name that can log in
    /// is refused: it is a user, not a group.
    pub fn create_group(&mut self, group: &RoleName, member_of: &[MemberRole]) -> Result<()> {
        let mut tx = self
            .client
            .transaction()
            .map_err(failed("starting a transaction"))?;
        let sql = "SELECT rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = $1";
        let found = tx
            .query_opt(sql, &[&group.as_str()])
            .map_err(failed("looking up a role"))?;
        match found.map(|row| row.try_get::<_, bool>(0)).transpose() {
            Ok(Some(true)) => {
                return Err(AdminError::Invalid(format!(
                    "{group} exists and can log in: it is not a group"
                )))
            }
            Ok(Some(false)) => {}
            Ok(None) => {
                let sql = format!("CREATE ROLE {} NOLOGIN", ident(group.as_str()));
                execute(&mut tx, &sql, format!("creating group {group}"))?;
            }
            Err(e) => return Err(failed("looking up a role")(e)),
        }
        grant_roles(&mut tx, group, member_of)?;
        tx.commit()
            .map_err(failed(format!("committing group {group}")))
    }

    /// Creates the charm's predefined roles ([`CHARMED_ROLES`]: NOLOGIN, each
    /// a member of its predefined roles) that are missing; returns those created.
    pub fn create_charmed_roles(&mut self) -> Result<Vec<String>> {
        let mut created = Vec::new();
        for (role, member_of) in CHARMED_ROLES {
            if role_exists_in(&mut self.client, role)? {
                continue;
            }
            let grants: Vec<String> = member_of.iter().map(|m| ident(m)).collect();
            let sql = format!(
                "CREATE ROLE {role_id} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION; \
                 GRANT {grants} TO {role_id}",
                role_id = ident(role),
                grants = grants.join(", ")
            );
            execute(&mut self.client, &sql, format!("creating role {role}"))?;
            created.push(role.to_string());
        }
        Ok(created)
    }

    /// The databases whose name starts with `prefix`, sorted; templates and
    /// databases that take no connections left out. The prefix is bound.
    pub fn databases_with_prefix(&mut self, prefix: &DatabasePrefix) -> Result<Vec<String>> {
        let action = "listing databases by prefix";
        let sql = "SELECT datname::text FROM pg_catalog.pg_database \
                   WHERE NOT datistemplate AND datallowconn \
                   AND pg_catalog.starts_with(datname, $1) ORDER BY datname";
        let rows = self
            .client
            .query(sql, &[&prefix.as_str()])
            .map_err(failed(action))?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(failed(action)))
            .collect()
    }

    /// Creates the database, owned by the connected role, unless it exists,
    /// and revokes PUBLIC's default rights on it. Returns whether it was created.
    pub fn ensure_database(&mut self, db: &DatabaseName) -> Result<bool> {
        let db_id = ident(db.as_str());
        let created = !self.database_exists(db.as_str())?;
        if created {
            // CREATE DATABASE copies template1, which no session may hold.
            self.others.clear();
            let sql = format!("CREATE DATABASE {db_id}");
            execute(&mut self.client, &sql, format!("creating database {db}"))?;
        }
        let sql = format!("REVOKE ALL ON DATABASE {db_id} FROM PUBLIC");
        execute(&mut self.client, &sql, format!("locking database {db}"))?;
        Ok(created)
    }

    /// Gives `role` exactly the listed privileges on each resource of
    /// `permissions` (what it held there before is revoked first): databases
    /// from this connection, schemas, tables and sequences inside `db`, in
    /// one transaction each.
    pub fn grant_permissions(
        &mut self,
        role: &RoleName,
        db: &DatabaseName,
        permissions: &[Permission],
    ) -> Result<()> {
        let role_id = ident(role.as_str());
        let statements = |kind: ResourceType| -> Vec<String> {
            permissions
                .iter()
                .filter(|p| {
                    (p.resource_type() == ResourceType::Database)
                        == (kind == ResourceType::Database)
                })
                .flat_map(|p| {
                    let object = match p.schema() {
                        Some(schema) => format!("{}.{}", ident(schema), ident(p.name())),
                        None => ident(p.name()),
                    };
                    let kind = p.resource_type().keyword();
                    [
                        format!("REVOKE ALL ON {kind} {object} FROM {role_id}"),
                        format!(
                            "GRANT {} ON {kind} {object} TO {role_id}",
                            p.privileges().join(", ")
                        ),
                    ]
                })
                .collect()
        };
        let action = format!("granting the permissions asked for to {role}");
        let on_databases = statements(ResourceType::Database);
        if !on_databases.is_empty() {
            execute(&mut self.client, &on_databases.join("; "), &action)?;
        }
        let inside = statements(ResourceType::Table);
        if !inside.is_empty() {
            let mut client = self.info.for_database(db.as_str()).connect()?;
            execute(&mut client, &inside.join("; "), action)?;
        }
        Ok(())
    }

    /// Sets an existing login role's password, leaving its attributes and
    /// memberships alone (for system users such as the superuser itself).
    pub fn set_password(&mut self, user: &RoleName, password: &str) -> Result<()> {
        if password.is_empty() {
            return Err(AdminError::Invalid(format!(
                "empty password for role {user}"
            )));
        }
        if !self.role_exists(user)? {
            return Err(AdminError::Invalid(format!(
                "no role {user} in this cluster"
            )));
        }
        let verifier = verifier::scram_sha_256_random_salt(password);
        self.upsert_login_role(
            user,
            &format!("PASSWORD {}", literal(&verifier)),
            |_| Ok(()),
        )
    }

    /// Creates the `admin` group clients may ask to join (`extra-user-roles:
    /// admin`) unless it exists: it cannot log in, reads and writes every
    /// database's data and may connect to `postgres`. Returns whether it was created.
    pub fn create_admin_group(&mut self) -> Result<bool> {
        let exists = role_exists_in(&mut self.client, ADMIN_GROUP)?;
        if !exists {
            let sql = format!(
                "CREATE ROLE {admin} NOLOGIN; \
                 GRANT pg_read_all_data, pg_write_all_data TO {admin}; \
                 GRANT CONNECT ON DATABASE postgres TO {admin}",
                admin = ident(ADMIN_GROUP)
            );
            execute(&mut self.client, &sql, "creating the admin group")?;
        }
        Ok(!exists)
    }

    /// Lets `user` connect to and create in `db`, including schema `public`.
    pub fn grant_database(&mut self, db: &DatabaseName, user: &RoleName) -> Result<()> {
        let (db_id, user_id) = (ident(db.as_str()), ident(user.as_str()));
        let action = format!("granting database {db} to {user}");
        let sql = format!("GRANT ALL PRIVILEGES ON DATABASE {db_id} TO {user_id}");
        execute(&mut self.client, &sql, &action)?;
        let mut client = self.info.for_database(db.as_str()).connect()?;
        let sql = format!("GRANT ALL ON SCHEMA public TO {user_id}");
        execute(&mut client, &sql, action)
    }

    /// Drops a role, handing whatever it owns in every database to the
    /// connected superuser first; databases and data stay. Returns whether
    /// the role existed.
    pub fn drop_user(&mut self, user: &RoleName) -> Result<bool> {
        if !self.role_exists(user)? {
            return Ok(false);
        }
        if user.as_str() == self.info.user {
            return Err(AdminError::Invalid(format!(
                "refusing to drop {user}: it is the role connected"
            )));
        }
        let sql = "SELECT datname::text FROM pg_catalog.pg_database \
                   WHERE datallowconn AND NOT datistemplate ORDER BY datname";
        let user_id = ident(user.as_str());
        for db in self.names(sql, "listing databases")? {
            let mut client = self.info.for_database(&db).connect()?;
            let action = format!("taking over what {user} owns in {db:?}");
            let sql =
                format!("REASSIGN OWNED BY {user_id} TO CURRENT_USER; DROP OWNED BY {user_id}");
            execute(&mut client, &sql, action)?;
        }
        let sql = format!("DROP ROLE {user_id}");
        execute(&mut self.client, &sql, format!("dropping role {user}"))?;
        Ok(true)
    }

    /// Installs (or refreshes) `<auth_user>.get_auth(username)` in `database`
    /// (a [`DatabaseName`] or a system database such as `postgres`): a
    /// SECURITY DEFINER function returning the name and verifier of a role that
    /// can log in and is neither a superuser, a replication role, expired nor
    /// the auth user itself. Only `auth_user` may execute it; the schema
    /// `<auth_user>` and the function belong to the connected superuser.
    pub fn install_auth_function(&mut self, database: &str, auth_user: &RoleName) -> Result<()> {
        let schema = ident(auth_user.as_str());
        let sql = format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             ALTER SCHEMA {schema} OWNER TO CURRENT_USER;
             CREATE OR REPLACE FUNCTION {schema}.get_auth(username TEXT)
             RETURNS TABLE(username TEXT, password TEXT)
             LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
             AS $body$
               SELECT rolname::TEXT, rolpassword::TEXT FROM pg_catalog.pg_authid
               WHERE rolname = $1 AND rolcanlogin AND NOT rolsuper AND NOT rolreplication
                 AND rolname <> {auth_literal}
                 AND (rolvaliduntil IS NULL OR rolvaliduntil > pg_catalog.now())
             $body$;
             ALTER FUNCTION {schema}.get_auth(TEXT) OWNER TO CURRENT_USER;
             REVOKE ALL ON FUNCTION {schema}.get_auth(TEXT) FROM PUBLIC;
             GRANT EXECUTE ON FUNCTION {schema}.get_auth(TEXT) TO {schema};
             GRANT USAGE ON SCHEMA {schema} TO {schema};
             GRANT CONNECT ON DATABASE {db} TO {schema};",
            auth_literal = literal(auth_user.as_str()),
            db = ident(database),
        );
        let mut client = self.info.for_database(database).connect()?;
        let action = format!("installing the auth function for {auth_user} in {database:?}");
        execute(&mut client, &sql, action)
    }

    /// Drops the auth function and its schema from `database`. Returns whether
    /// there was anything to remove; a database that is gone has nothing.
    pub fn remove_auth_function(&mut self, database: &str, auth_user: &RoleName) -> Result<bool> {
        let mut client = match self.info.for_database(database).connect() {
            Err(AdminError::Connect { source, .. })
                if source.code() == Some(&SqlState::INVALID_CATALOG_NAME) =>
            {
                return Ok(false)
            }
            other => other?,
        };
        let sql = "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)";
        if !flag(&mut client, sql, auth_user.as_str(), "looking up a schema")? {
            return Ok(false);
        }
        let schema = ident(auth_user.as_str());
        let sql = format!(
            "DROP FUNCTION IF EXISTS {schema}.get_auth(TEXT); DROP SCHEMA IF EXISTS {schema}"
        );
        let action = format!("removing the auth function for {auth_user} from {database:?}");
        execute(&mut client, &sql, action)?;
        Ok(true)
    }

    /// The extensions this server can create (`pg_available_extensions`), sorted.
    pub fn available_extensions(&mut self) -> Result<Vec<String>> {
        let sql = "SELECT name::text FROM pg_catalog.pg_available_extensions ORDER BY name";
        self.names(sql, "listing the available extensions")
    }

    /// The parameters whose new value PostgreSQL takes only when it restarts
    /// (`pg_settings.pending_restart`), sorted.
    pub fn pending_restart(&mut self) -> Result<Vec<String>> {
        let sql = "SELECT name FROM pg_catalog.pg_settings WHERE pending_restart ORDER BY name";
        self.names(sql, "listing the parameters pending a restart")
    }

    /// The extensions created in `database`, sorted; none when the database
    /// does not exist.
    pub fn installed_extensions(&mut self, database: &str) -> Result<Vec<String>> {
        let action = format!("listing the extensions of {database:?}");
        let Some(client) = self.client_in(database)? else {
            return Ok(Vec::new());
        };
        let sql = "SELECT extname::text FROM pg_catalog.pg_extension ORDER BY extname";
        let rows = client.query(sql, &[]).map_err(failed(&action))?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(failed(&action)))
            .collect()
    }

    /// Creates `extension` in `db` unless it is there (with the extensions it
    /// needs), in its schema when one is named (the schema made first, owned
    /// by `owner`, when missing). The names travel as parameters and the
    /// server quotes them into the statements itself; an extension the server
    /// does not offer is refused before anything is created.
    pub fn create_extension(
        &mut self,
        db: &DatabaseName,
        extension: &Extension,
        owner: &RoleName,
    ) -> Result<()> {
        let mut client = self.info.for_database(db.as_str()).connect()?;
        let action = format!("creating extension {extension} in {db}");
        let sql = "SELECT pg_catalog.format('CREATE EXTENSION IF NOT EXISTS %I', name) \
                   || CASE WHEN $2::text IS NULL THEN '' \
                      ELSE pg_catalog.format(' SCHEMA %I', $2::text) END \
                   || ' CASCADE' \
                   FROM pg_catalog.pg_available_extensions WHERE name = $1::text";
        let row = client
            .query_opt(sql, &[&extension.name(), &extension.schema()])
            .map_err(failed(&action))?;
        let Some(row) = row else {
            return Err(AdminError::Invalid(format!(
                "extension {:?} is not available on this server",
                extension.name()
            )));
        };
        let create: String = row.try_get(0).map_err(failed(&action))?;
        if let Some(schema) = extension.schema() {
            let sql =
                "SELECT pg_catalog.format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I', \
                       $1::text, $2::text)";
            let row = client
                .query_one(sql, &[&schema, &owner.as_str()])
                .map_err(failed(&action))?;
            let create_schema: String = row.try_get(0).map_err(failed(&action))?;
            execute(&mut client, &create_schema, &action)?;
        }
        execute(&mut client, &create, action)
    }

    /// Creates the extension named `name` in `database` (a template such as
    /// `template1` too) unless it is there, with the extensions it needs
    /// (`CASCADE`). The name travels as a parameter and the server quotes it;
    /// an extension the server does not offer is refused before anything is
    /// created.
    pub fn enable_extension(&mut self, database: &str, name: &str) -> Result<()> {
        let client = self.existing(database)?;
        let action = format!("creating extension {name:?} in {database:?}");
        let sql = "SELECT pg_catalog.format('CREATE EXTENSION IF NOT EXISTS %I CASCADE', name) \
                   FROM pg_catalog.pg_available_extensions WHERE name = $1::text";
        let row = client.query_opt(sql, &[&name]).map_err(failed(&action))?;
        let Some(row) = row else {
            return Err(AdminError::Invalid(format!(
                "extension {name:?} is not available on this server"
            )));
        };
        let create: String = row.try_get(0).map_err(failed(&action))?;
        execute(client, &create, action)
    }

    /// The objects of `database` that depend on the extension named `name`
    /// and are not part of it (a column of its type, an index with its
    /// operator class, another extension that requires it), described as
    /// PostgreSQL names them (`pg_depend`), sorted; none when the extension
    /// or the database is absent.
    pub fn extension_dependants(&mut self, database: &str, name: &str) -> Result<Vec<String>> {
        let action = format!("listing what depends on extension {name:?} in {database:?}");
        let Some(client) = self.client_in(database)? else {
            return Ok(Vec::new());
        };
        // An extension is everything that goes with it (its members, and
        // what depends on them automatically or internally); what depends on
        // that normally, outside it, would make DROP EXTENSION refuse. What
        // goes with another extension is named as that extension.
        let sql = "WITH RECURSIVE whole(classid, objid) AS ( \
                       SELECT 'pg_catalog.pg_extension'::regclass::oid, oid \
                       FROM pg_catalog.pg_extension WHERE extname = $1::text \
                     UNION \
                       SELECT d.classid, d.objid FROM pg_catalog.pg_depend d \
                       JOIN whole w ON d.refclassid = w.classid AND d.refobjid = w.objid \
                       WHERE d.deptype IN ('e', 'i', 'a')), \
                   dep AS ( \
                       SELECT DISTINCT d.classid, d.objid, d.objsubid \
                       FROM pg_catalog.pg_depend d \
                       JOIN whole w ON d.refclassid = w.classid AND d.refobjid = w.objid \
                       WHERE d.deptype = 'n' \
                         AND NOT EXISTS (SELECT 1 FROM whole o \
                                         WHERE o.classid = d.classid AND o.objid = d.objid)), \
                   up(classid, objid, refclassid, refobjid) AS ( \
                       SELECT classid, objid, classid, objid FROM dep \
                     UNION \
                       SELECT u.classid, u.objid, p.refclassid, p.refobjid \
                       FROM up u JOIN pg_catalog.pg_depend p \
                         ON p.classid = u.refclassid AND p.objid = u.refobjid \
                       WHERE p.deptype IN ('i', 'a')) \
                   SELECT DISTINCT COALESCE( \
                       (SELECT 'extension ' || x.extname FROM up u \
                        JOIN pg_catalog.pg_depend e \
                          ON e.classid = u.refclassid AND e.objid = u.refobjid \
                         AND e.deptype = 'e' \
                         AND e.refclassid = 'pg_catalog.pg_extension'::regclass \
                        JOIN pg_catalog.pg_extension x ON x.oid = e.refobjid \
                        WHERE u.classid = dep.classid AND u.objid = dep.objid LIMIT 1), \
                       pg_catalog.pg_describe_object(dep.classid, dep.objid, dep.objsubid)) \
                   FROM dep \
                   ORDER BY 1";
        let rows = client.query(sql, &[&name]).map_err(failed(&action))?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(failed(&action)))
            .collect()
    }

    /// Drops the extension named `name` from `database` if it is there, and
    /// nothing else: an object that depends on it makes the server refuse.
    /// Returns whether it was there.
    pub fn drop_extension(&mut self, database: &str, name: &str) -> Result<bool> {
        let client = self.existing(database)?;
        let action = format!("dropping extension {name:?} from {database:?}");
        let sql = "SELECT pg_catalog.format('DROP EXTENSION %I RESTRICT', extname) \
                   FROM pg_catalog.pg_extension WHERE extname = $1::text";
        let row = client.query_opt(sql, &[&name]).map_err(failed(&action))?;
        let Some(row) = row else {
            return Ok(false);
        };
        let drop: String = row.try_get(0).map_err(failed(&action))?;
        execute(client, &drop, action)?;
        Ok(true)
    }

    /// The libraries the running server loaded at start
    /// (`shared_preload_libraries`), in its order.
    pub fn preloaded_libraries(&mut self) -> Result<Vec<String>> {
        let action = "reading shared_preload_libraries";
        let row = self
            .client
            .query_one(
                "SELECT pg_catalog.current_setting('shared_preload_libraries')",
                &[],
            )
            .map_err(failed(action))?;
        let value: String = row.try_get(0).map_err(failed(action))?;
        Ok(value
            .split(',')
            .map(|l| l.trim().trim_matches('"').to_string())
            .filter(|l| !l.is_empty())
            .collect())
    }

    /// In one transaction kept out of the server log (`options` carry a
    /// verifier): creates or alters `user` WITH LOGIN and `options`, then `then`.
    fn upsert_login_role(
        &mut self,
        user: &RoleName,
        options: &str,
        then: impl FnOnce(&mut Transaction) -> Result<()>,
    ) -> Result<()> {
        let mut tx = self
            .client
            .transaction()
            .map_err(failed("starting a transaction"))?;
        let sql = "SET LOCAL log_statement = 'none'; SET LOCAL log_min_error_statement = 'panic'";
        execute(&mut tx, sql, "turning off statement logging")?;
        let verb = if role_exists_in(&mut tx, user.as_str())? {
            "ALTER"
        } else {
            "CREATE"
        };
        let sql = format!("{verb} ROLE {} WITH LOGIN {options}", ident(user.as_str()));
        execute(&mut tx, &sql, format!("setting up role {user}"))?;
        then(&mut tx)?;
        tx.commit()
            .map_err(failed(format!("committing role {user}")))
    }

    /// The session's connection to `database` (made on first use); `None`
    /// when the database does not exist.
    fn client_in(&mut self, database: &str) -> Result<Option<&mut Client>> {
        if !self.others.contains_key(database) {
            let client = match self.info.for_database(database).connect() {
                Err(AdminError::Connect { source, .. })
                    if source.code() == Some(&SqlState::INVALID_CATALOG_NAME) =>
                {
                    return Ok(None)
                }
                other => other?,
            };
            self.others.insert(database.to_string(), client);
        }
        Ok(self.others.get_mut(database))
    }

    /// [`Admin::client_in`] for a database that must exist.
    fn existing(&mut self, database: &str) -> Result<&mut Client> {
        self.client_in(database)?
            .ok_or_else(|| AdminError::Invalid(format!("database {database:?} does not exist")))
    }

    /// Runs a query returning one text column.
    fn names(&mut self, sql: &str, action: &str) -> Result<Vec<String>> {
        let rows = self.client.query(sql, &[]).map_err(failed(action))?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(failed(action)))
            .collect()
    }
}
