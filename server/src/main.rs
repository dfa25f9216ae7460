//! The `ferry` command: the HTTP service and the operator's tools.

/// The process's allocator: jemalloc. An upload's batch holds the request body's frames while
/// they are sealed, so hyper reads the next bytes into a fresh buffer of up to 400 KiB. glibc's
/// allocator handed such buffers back to the kernel when they were freed (trimming its arenas)
/// and the next ones were faulted in again, page by page: 31,000–56,000 page faults per GiB
/// uploaded on average, up to a sixth of the server's CPU in a profile, and more with many
/// uploads on many threads. jemalloc keeps freed pages for reuse and returns them over seconds:
/// about 2,000 faults per GiB, 4–11 % less CPU for one upload and about a quarter less with 32
/// at once, within the memory bars (load/README.md, "Issue 18, part 3"; mimalloc, measured too,
/// held three times the memory under 32 uploads).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ferry::addin::unified::SignIn;
use ferry::audit::Actor;
use ferry::auth::{Role, api_keys, people};
use ferry::config::Config;
use ferry::crypto::MasterKey;
use ferry::db::Db;
use ferry::jobs::expiry::ExpiryPass;
use ferry::relay::accounts as relay_accounts;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing_subscriber::EnvFilter;

/// Send large files safely by e-mail.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (FERRY_LISTEN, default 127.0.0.1:8080).
    Serve,
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage API keys.
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// Run one pass of the expiry job now (serving instances run one every minute) and print
    /// what it did as JSON. Safe beside running instances: rows are claimed before any work.
    Expire {
        /// Run as if it were this time (RFC 3339), e.g. to see what will expire by then.
        #[arg(long, value_parser = parse_rfc3339)]
        now: Option<OffsetDateTime>,
        /// Report what is due without changing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Inspect and prepare the object store (FERRY_STORE).
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Work with the tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The TLS-enforcing SMTP relay: `serve` it, manage its accounts.
    Relay {
        #[command(subcommand)]
        command: RelayCommand,
    },
    /// Print the Outlook add-in's manifest (XML) for the deployment at a public URL, to upload
    /// in the Microsoft 365 admin centre (Integrated apps) or to sideload. Also served by
    /// `ferry serve` at /addin/manifest.xml when FERRY_PUBLIC_URL is set.
    Manifest {
        /// Where users reach this deployment (https://…; FERRY_PUBLIC_URL when not given).
        #[arg(long)]
        public_url: Option<String>,
        /// Print the unified JSON manifest (Microsoft 365 app package) instead, with the same
        /// id and URLs; with FERRY_ENTRA_CLIENT_ID set it names the app registration for SSO.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum RelayCommand {
    /// Take mail from tenants' mail servers (FERRY_RELAY_LISTEN, default 127.0.0.1:2525;
    /// STARTTLS, then SMTP AUTH) and deliver it over authenticated TLS only.
    Serve,
    /// SMTP AUTH accounts of tenants' mail servers.
    Account {
        #[command(subcommand)]
        command: RelayAccountCommand,
    },
    /// A tenant's DKIM keys: list them, activate a new one (after publishing its record),
    /// remove a retired one.
    DkimKey {
        #[command(subcommand)]
        command: DkimKeyCommand,
    },
    /// The domains a tenant's mail server may send from (MAIL FROM); the relay refuses
    /// every other sender.
    Domain {
        #[command(subcommand)]
        command: RelayDomainCommand,
    },
    /// Make a DKIM key for one of a tenant's domains and print the DNS TXT record to publish;
    /// mail whose From is in that domain is signed with it from then on — or, when the domain
    /// already has a signing key (rotation), once `ferry relay dkim-key activate` says so.
    DkimKeygen {
        /// The tenant's id.
        #[arg(long)]
        tenant: uuid::Uuid,
        /// The domain (`d=`), e.g. hospital.example.
        #[arg(long)]
        domain: String,
        /// The selector (`s=`), e.g. ferry2026.
        #[arg(long)]
        selector: String,
        /// `rsa` (2048, verified everywhere) or `ed25519`.
        #[arg(long, value_enum, default_value = "rsa")]
        algorithm: DkimAlgorithm,
        /// Print `{"name", "record"}` as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DkimKeyCommand {
    /// List the tenant's keys: domain, selector, algorithm, made, signing since.
    List {
        /// The tenant's id.
        #[arg(long)]
        tenant: uuid::Uuid,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Make a key sign its domain's mail from now on (publish its TXT record first).
    Activate(DkimKeyName),
    /// Delete a retired key (remove its TXT record a few days after it stopped signing).
    Remove(DkimKeyName),
}

/// One DKIM key of a tenant.
#[derive(clap::Args)]
struct DkimKeyName {
    /// The tenant's id.
    #[arg(long)]
    tenant: uuid::Uuid,
    /// The domain (`d=`).
    #[arg(long)]
    domain: String,
    /// The selector (`s=`).
    #[arg(long)]
    selector: String,
}

/// One sending domain of a tenant.
#[derive(clap::Args)]
struct RelayDomainName {
    /// The tenant's id.
    #[arg(long)]
    tenant: uuid::Uuid,
    /// The domain, e.g. hospital.example (exactly: subdomains are added on their own).
    #[arg(long)]
    domain: String,
}

#[derive(Subcommand)]
enum RelayDomainCommand {
    /// Let the tenant's mail server send from a domain (one tenant per domain).
    Add(RelayDomainName),
    /// Stop relaying for a domain of the tenant.
    Remove(RelayDomainName),
    /// List the tenant's domains, one per line (or a JSON array).
    List {
        /// The tenant's id.
        #[arg(long)]
        tenant: uuid::Uuid,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DkimAlgorithm {
    Rsa,
    Ed25519,
}

#[derive(Subcommand)]
enum RelayAccountCommand {
    /// Create credentials a tenant's mail server relays with (SMTP AUTH PLAIN/LOGIN over
    /// TLS) and print them (the password is shown only once).
    Create {
        /// The tenant's id.
        #[arg(long)]
        tenant: uuid::Uuid,
        /// Print `{"username", "password"}` as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an account: AUTH with it fails from the next attempt on.
    Revoke {
        /// The account's username (`fr_…`).
        #[arg(long)]
        username: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every tenant's event chain (or one tenant's) and name the first broken event;
    /// exits non-zero if any chain is broken. Needs the master key the events were made with.
    Verify {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<uuid::Uuid>,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Install the bucket's safety-net lifecycle rules: expire objects after the longest
    /// retention + 1 day, abort incomplete multipart uploads after 7 days (S3 only).
    Lifecycle,
    /// Report reachability, region (EEA) and lifecycle rules; exits non-zero on a problem.
    Check,
}

#[derive(Subcommand)]
enum ApikeyCommand {
    /// Create an API key for a tenant and print it (shown only once).
    Create {
        /// The tenant's id.
        #[arg(long)]
        tenant: uuid::Uuid,
        /// `admin` (policy, and everything a sender does) or `sender` (uploads and shares).
        #[arg(long, value_enum)]
        role: KeyRole,
        /// Print `{"key_id", "api_key", "role"}` as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API key: every request with it is refused (401) from now on.
    Revoke {
        /// The key's id (`key_id` of `apikey create --json`, `created_by` of a share).
        #[arg(long)]
        key_id: uuid::Uuid,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum KeyRole {
    Admin,
    Sender,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and print its id and a first admin API key (shown only once).
    Create {
        /// Unique tenant name.
        name: String,
        /// Print `{"tenant_id", "api_key"}` as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Let the people of a Microsoft 365 organisation sign in to a tenant through the Outlook
    /// add-in (verify first that the organisation is this tenant's customer).
    LinkEntra {
        /// The Ferry tenant's id.
        #[arg(long)]
        tenant: uuid::Uuid,
        /// The Microsoft 365 organisation's tenant id (a GUID, `tid` in its tokens).
        #[arg(long)]
        entra_tenant: uuid::Uuid,
    },
    /// Stop a Microsoft 365 organisation's people signing in to a tenant (refused from their
    /// next request; what they sent stays until it expires).
    UnlinkEntra {
        /// The Ferry tenant's id.
        #[arg(long)]
        tenant: uuid::Uuid,
        /// The Microsoft 365 organisation's tenant id.
        #[arg(long)]
        entra_tenant: uuid::Uuid,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let config = Config::load()?;
    match cli.command {
        Command::Manifest { public_url, json } => {
            let url = public_url
                .or(config.public_url)
                .context("give --public-url https://… (or set FERRY_PUBLIC_URL)")?;
            let manifest = ferry::addin::Manifest::new(&url)?;
            if json {
                let sign_in = config.entra.as_ref().map(|entra| SignIn {
                    client_id: entra.client_id.clone(),
                    resource: entra
                        .app_id_uri
                        .clone()
                        .unwrap_or_else(|| format!("api://{}", entra.client_id)),
                });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&manifest.unified(sign_in.as_ref()))?
                );
            } else {
                print!("{}", manifest.xml());
            }
        }
        Command::Serve => ferry::app::serve(config).await?,
        Command::Tenant {
            command: TenantCommand::Create { name, json },
        } => {
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("creating {}", config.data_dir.display()))?;
            let (db, master) = open_db(&config).await?;
            let tenant = db.create_tenant(&name).await?;
            let key =
                api_keys::create(&db, &master, tenant.id, Role::Admin, Actor::Operator).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"tenant_id": tenant.id, "api_key": key.text})
                );
            } else {
                println!("tenant  {} ({})", tenant.name, tenant.id);
                println!(
                    "api key {}  (admin; shown only now, keep it safe)",
                    key.text
                );
            }
        }
        Command::Tenant {
            command:
                TenantCommand::LinkEntra {
                    tenant,
                    entra_tenant,
                },
        } => {
            let (db, master) = open_db(&config).await?;
            let proof = serde_json::json!("operator");
            let now = people::link(&db, &master, tenant, entra_tenant, Actor::Operator, proof)
                .await
                .with_context(|| format!("linking {entra_tenant} to tenant {tenant}"))?;
            let state = if now { "linked" } else { "already linked" };
            println!("{state}: Microsoft 365 tenant {entra_tenant} → tenant {tenant}");
        }
        Command::Tenant {
            command:
                TenantCommand::UnlinkEntra {
                    tenant,
                    entra_tenant,
                },
        } => {
            let (db, master) = open_db(&config).await?;
            let now = people::unlink(&db, &master, tenant, entra_tenant, Actor::Operator)
                .await
                .with_context(|| format!("unlinking {entra_tenant} from tenant {tenant}"))?;
            anyhow::ensure!(
                now,
                "Microsoft 365 tenant {entra_tenant} is not linked to tenant {tenant}"
            );
            println!("unlinked: Microsoft 365 tenant {entra_tenant} from tenant {tenant}");
        }
        Command::Store { command } => store_command(&config, command).await?,
        Command::Apikey {
            command: ApikeyCommand::Create { tenant, role, json },
        } => {
            let (db, master) = open_db(&config).await?;
            let role = match role {
                KeyRole::Admin => Role::Admin,
                KeyRole::Sender => Role::Sender,
            };
            let key = api_keys::create(&db, &master, tenant, role, Actor::Operator)
                .await
                .with_context(|| format!("creating a key for tenant {tenant}"))?;
            let key_id = key.id;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"key_id": key_id, "api_key": key.text, "role": role.as_str()})
                );
            } else {
                println!(
                    "api key {}  ({}; shown only now, keep it safe)",
                    key.text,
                    role.as_str()
                );
            }
        }
        Command::Apikey {
            command: ApikeyCommand::Revoke { key_id },
        } => {
            let (db, master) = open_db(&config).await?;
            let revoked = api_keys::revoke(&db, &master, key_id, Actor::Operator)
                .await
                .with_context(|| format!("no API key has the id {key_id}"))?;
            let tenant = revoked.tenant;
            if revoked.now {
                println!("revoked api key {key_id} of tenant {tenant}");
            } else {
                println!("api key {key_id} of tenant {tenant} was already revoked");
            }
        }
        Command::Relay {
            command:
                RelayCommand::DkimKeygen {
                    tenant,
                    domain,
                    selector,
                    algorithm,
                    json,
                },
        } => {
            let (db, master) = open_db(&config).await?;
            let algorithm = match algorithm {
                DkimAlgorithm::Rsa => ferry_relay::dkim::Algorithm::RsaSha256,
                DkimAlgorithm::Ed25519 => ferry_relay::dkim::Algorithm::Ed25519Sha256,
            };
            let key = ferry::relay::dkim_keys::generate(
                &db, &master, tenant, &domain, &selector, algorithm,
            )
            .await
            .with_context(|| format!("making a DKIM key for {domain} of tenant {tenant}"))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"name": key.name, "record": key.record, "active": key.active})
                );
            } else {
                // A TXT string holds at most 255 characters: an RSA key needs several.
                let strings: Vec<String> = key
                    .record
                    .as_bytes()
                    .chunks(255)
                    .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
                    .collect();
                println!("{}. IN TXT ( {} )", key.name, strings.join(" "));
                if !key.active {
                    eprintln!(
                        "the domain already has a signing key: publish this record, then \
                         `ferry relay dkim-key activate --tenant {tenant} --domain {domain} \
                         --selector {selector}`"
                    );
                }
            }
        }
        Command::Relay {
            command: RelayCommand::Domain { command },
        } => relay_domain_command(&config, command).await?,
        Command::Relay {
            command: RelayCommand::DkimKey { command },
        } => dkim_key_command(&config, command).await?,
        Command::Relay {
            command: RelayCommand::Serve,
        } => {
            let relay = ferry::relay::config::RelayConfig::load()?;
            let state = ferry::app::open(config, String::new()).await?;
            ferry::relay::service::run(state, relay).await?;
        }
        Command::Relay {
            command:
                RelayCommand::Account {
                    command: RelayAccountCommand::Create { tenant, json },
                },
        } => {
            let (db, master) = open_db(&config).await?;
            let account = relay_accounts::create(&db, &master, tenant, Actor::Operator)
                .await
                .with_context(|| format!("creating a relay account for tenant {tenant}"))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"username": account.username, "password": account.password})
                );
            } else {
                println!("username {}", account.username);
                println!(
                    "password {}  (shown only now, keep it safe)",
                    account.password
                );
            }
        }
        Command::Relay {
            command:
                RelayCommand::Account {
                    command: RelayAccountCommand::Revoke { username },
                },
        } => {
            let (db, master) = open_db(&config).await?;
            let (tenant, now) = relay_accounts::revoke(&db, &master, &username, Actor::Operator)
                .await
                .with_context(|| format!("no relay account is named {username}"))?;
            if now {
                println!("revoked relay account {username} of tenant {tenant}");
            } else {
                println!("relay account {username} of tenant {tenant} was already revoked");
            }
        }
        Command::Expire { now, dry_run } => {
            let state = ferry::app::open(config, String::new()).await?;
            let mut pass = ExpiryPass {
                dry_run,
                ..ExpiryPass::default()
            };
            if let Some(now) = now {
                pass.now = now;
            }
            let report = pass.run(&state).await?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::Audit {
            command: AuditCommand::Verify { tenant },
        } => verify_audit(&config, tenant).await?,
    }
    Ok(())
}

/// The database and the master key, checked against each other.
async fn open_db(config: &Config) -> anyhow::Result<(Db, MasterKey)> {
    let db = Db::connect(&config.database_url).await?;
    let master = ferry::app::master_key(config, &db).await?;
    Ok((db, master))
}

/// `ferry audit verify`: one line per tenant, the first broken event named.
async fn verify_audit(config: &Config, only: Option<uuid::Uuid>) -> anyhow::Result<()> {
    let (db, master) = open_db(config).await?;
    let tenants = match only {
        Some(tenant) => vec![tenant],
        None => db.audited_tenants().await?,
    };
    let mut broken = 0;
    for tenant in tenants {
        match ferry::audit::verify_tenant(&db, &master, tenant).await? {
            Ok(events) => println!("ok      tenant {tenant}: {events} events, chain intact"),
            Err(at) => {
                broken += 1;
                println!("BROKEN  {at}");
            }
        }
    }
    anyhow::ensure!(broken == 0, "{broken} audit chain(s) broken");
    Ok(())
}

fn parse_rfc3339(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| format!("not an RFC 3339 time: {e}"))
}

async fn dkim_key_command(config: &Config, command: DkimKeyCommand) -> anyhow::Result<()> {
    use ferry::relay::dkim_keys;
    let (db, master) = open_db(config).await?;
    match command {
        DkimKeyCommand::List { tenant, json } => {
            let keys = dkim_keys::list(&db, tenant).await?;
            let rfc3339 = |t: time::OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
            if json {
                let keys: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "domain": k.domain,
                            "selector": k.selector,
                            "algorithm": k.algorithm,
                            "created_at": rfc3339(k.created_at),
                            "activated_at": k.activated_at.map(rfc3339),
                        })
                    })
                    .collect();
                println!("{}", serde_json::json!(keys));
            } else {
                for k in keys {
                    let since = k.activated_at.map_or("waiting".to_owned(), rfc3339);
                    println!("{}  {}  {}  {since}", k.domain, k.selector, k.algorithm);
                }
            }
        }
        DkimKeyCommand::Activate(DkimKeyName {
            tenant,
            domain,
            selector,
        }) => {
            dkim_keys::activate(&db, &master, tenant, &domain, &selector)
                .await
                .with_context(|| format!("tenant {tenant} has no key {selector} for {domain}"))?;
            println!("signing: {selector}._domainkey.{domain}");
        }
        DkimKeyCommand::Remove(DkimKeyName {
            tenant,
            domain,
            selector,
        }) => {
            dkim_keys::remove(&db, &master, tenant, &domain, &selector)
                .await
                .with_context(|| format!("tenant {tenant} has no key {selector} for {domain}"))?;
            println!("removed: {selector}._domainkey.{domain}");
        }
    }
    Ok(())
}

async fn relay_domain_command(config: &Config, command: RelayDomainCommand) -> anyhow::Result<()> {
    use ferry::relay::domains;
    let (db, master) = open_db(config).await?;
    match command {
        RelayDomainCommand::Add(RelayDomainName { tenant, domain }) => {
            let added = domains::add(&db, &master, tenant, &domain, Actor::Operator)
                .await
                .with_context(|| format!("adding {domain} to tenant {tenant}"))?;
            let state = if added { "added" } else { "already there" };
            println!("{state}: {domain} for tenant {tenant}");
        }
        RelayDomainCommand::Remove(RelayDomainName { tenant, domain }) => {
            domains::remove(&db, &master, tenant, &domain, Actor::Operator)
                .await
                .with_context(|| format!("tenant {tenant} has no relay domain {domain}"))?;
            println!("removed: {domain} from tenant {tenant}");
        }
        RelayDomainCommand::List { tenant, json } => {
            let list = domains::list(&db, tenant).await?;
            if json {
                println!("{}", serde_json::json!(list));
            } else {
                for domain in list {
                    println!("{domain}");
                }
            }
        }
    }
    Ok(())
}

async fn store_command(config: &Config, command: StoreCommand) -> anyhow::Result<()> {
    if let Some(dir) = config.store.strip_prefix("file://") {
        ferry::store::disk::DiskStore::open(dir)?;
        println!("ok  file store {dir} is usable (lifecycle rules apply to S3 stores only)");
        return Ok(());
    }
    let store = ferry::store::s3::connect(config).await?;
    match command {
        StoreCommand::Lifecycle => {
            store.check_location().await?;
            store.install_lifecycle().await?;
            println!(
                "ok  bucket {}: objects expire after {} days, incomplete multipart uploads are \
                 aborted after {} days",
                store.location().bucket,
                ferry::store::s3::admin::expire_after_days(),
                ferry::store::s3::admin::ABORT_AFTER_DAYS
            );
        }
        StoreCommand::Check => {
            let report = store.check().await;
            for (ok, text) in &report.findings {
                println!("{}  {text}", if *ok { "ok " } else { "BAD" });
            }
            anyhow::ensure!(report.ok(), "the store is not ready for Ferry");
        }
    }
    Ok(())
}
