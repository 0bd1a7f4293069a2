//! The Windows service: `onshi-agent install` registers it (auto start, LocalSystem, restart on
//! failure), `uninstall` removes it, and the service control manager starts the binary with
//! `service`, which runs the same loop as `onshi-agent run`. A stop or a system shutdown fires
//! the loop's shutdown future, whose last step flushes the spool (DESIGN §4, STYLE 6).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod,
    ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{
    self, ServiceControlHandlerResult, ServiceStatusHandle,
};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

use crate::config::{AgentConfig, default_config_file, default_data_dir};
use crate::error::AgentError;
use crate::runner::{self, RunOptions};

/// The service's name (`sc query OnshiWatchAgent`).
pub const SERVICE_NAME: &str = "OnshiWatchAgent";
const DISPLAY_NAME: &str = "Onshi Watch Agent";
const DESCRIPTION: &str =
    "Watches this online qualification confirmation terminal and reports to Onshi Watch.";
const SERVICE_TYPE: ServiceType = ServiceType::OWN_PROCESS;
/// How long a stop may take: the last flush has 5 s, the collection in progress a few more.
const STOP_WAIT: Duration = Duration::from_secs(20);

fn service_error(action: &'static str) -> impl FnOnce(windows_service::Error) -> AgentError {
    move |e| AgentError::Config(format!("cannot {action} the {SERVICE_NAME} service: {e}"))
}

/// Registers (or re-registers) the service for the running executable and starts it. The
/// service is started with `--config` and `--data-dir` so it reads what `install` wrote.
pub fn install(cfg: &AgentConfig) -> Result<(), AgentError> {
    let exe =
        std::env::current_exe().map_err(|e| AgentError::io("locate", "onshi-agent.exe", e))?;
    let config_file = cfg.config_file.clone().unwrap_or_else(default_config_file);
    write_config_if_missing(&config_file, cfg)?;
    let info = ServiceInfo {
        name: OsString::from(SERVICE_NAME),
        display_name: OsString::from(DISPLAY_NAME),
        service_type: SERVICE_TYPE,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: exe,
        launch_arguments: vec![
            OsString::from("--config"),
            config_file.into_os_string(),
            OsString::from("--data-dir"),
            cfg.data_dir.clone().into_os_string(),
            OsString::from("service"),
        ],
        dependencies: vec![],
        // LocalSystem: the Security log, the SAM and every user's certificate store need it.
        account_name: None,
        account_password: None,
    };
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .map_err(service_error("connect to the service manager for"))?;
    let access = ServiceAccess::QUERY_STATUS
        | ServiceAccess::CHANGE_CONFIG
        | ServiceAccess::START
        | ServiceAccess::STOP;
    let service = match manager.open_service(SERVICE_NAME, access) {
        Ok(existing) => {
            stop_and_wait(&existing)?;
            existing
                .change_config(&info)
                .map_err(service_error("update"))?;
            existing
        }
        Err(_) => manager
            .create_service(&info, access)
            .map_err(service_error("create"))?,
    };
    service
        .set_description(DESCRIPTION)
        .map_err(service_error("describe"))?;
    // Restart after 1 min, again after 1 min, then every 5 min; forget failures after a day.
    let restart = |secs| ServiceAction {
        action_type: ServiceActionType::Restart,
        delay: Duration::from_secs(secs),
    };
    let recovery = service
        .update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(86_400)),
            reboot_msg: None,
            command: None,
            actions: Some(vec![restart(60), restart(60), restart(300)]),
        })
        .and_then(|()| service.set_failure_actions_on_non_crash_failures(true));
    if let Err(e) = recovery {
        // The agent still runs without it (Wine does not implement it); say so loudly.
        tracing::warn!(error = %e, "cannot set the service's restart-on-failure; set it with sc failure");
        eprintln!(
            "warning: restart-on-failure not set ({e}); run: sc failure {SERVICE_NAME} reset= 86400 actions= restart/60000/restart/60000/restart/300000"
        );
    }
    service
        .start::<&OsStr>(&[])
        .map_err(service_error("start"))?;
    Ok(())
}

/// Stops and removes the service. The data directory (identity, spool) stays for a reinstall.
pub fn uninstall() -> Result<(), AgentError> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(service_error("connect to the service manager for"))?;
    let service = manager
        .open_service(
            SERVICE_NAME,
            ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
        )
        .map_err(service_error("open"))?;
    stop_and_wait(&service)?;
    service.delete().map_err(service_error("delete"))
}

fn stop_and_wait(service: &windows_service::service::Service) -> Result<(), AgentError> {
    let status = service.query_status().map_err(service_error("query"))?;
    if status.current_state == ServiceState::Stopped {
        return Ok(());
    }
    if status.current_state != ServiceState::StopPending {
        service.stop().map_err(service_error("stop"))?;
    }
    let started = Instant::now();
    while started.elapsed() < STOP_WAIT + Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(500));
        if service
            .query_status()
            .is_ok_and(|s| s.current_state == ServiceState::Stopped)
        {
            return Ok(());
        }
    }
    Err(AgentError::Config(format!(
        "the {SERVICE_NAME} service did not stop"
    )))
}

/// The settings file the service reads: the server URL (and extra CA) given to `install`, unless
/// an installer already put one there.
fn write_config_if_missing(path: &Path, cfg: &AgentConfig) -> Result<(), AgentError> {
    if path.exists() {
        return Ok(());
    }
    let server = cfg
        .server
        .as_deref()
        .ok_or_else(|| AgentError::Config("install needs --server URL".into()))?;
    let mut text = String::from("# Written by `onshi-agent install`.\n");
    text.push_str(&format!("server = {}\n", toml_string(server)));
    if let Some(ca) = &cfg.ca_cert {
        text.push_str(&format!(
            "ca_cert = {}\n",
            toml_string(&ca.display().to_string())
        ));
    }
    if cfg.data_dir != default_data_dir() {
        text.push_str(&format!(
            "data_dir = {}\n",
            toml_string(&cfg.data_dir.display().to_string())
        ));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| AgentError::io("create", dir, e))?;
    }
    crate::atomic_file::write(path, text.as_bytes(), crate::atomic_file::Access::Default)
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

static SERVICE_CONFIG: OnceLock<AgentConfig> = OnceLock::new();

/// Hands the process to the service control manager; returns when the service has stopped.
/// Only the service control manager starts a process this way (`onshi-agent service`).
pub fn run_dispatcher(cfg: AgentConfig) -> Result<(), AgentError> {
    crate::transport::install_crypto_provider();
    let _ = SERVICE_CONFIG.set(cfg);
    service_dispatcher::start(SERVICE_NAME, ffi_service_main).map_err(service_error(
        "run as (this command is for the service control manager)",
    ))
}

define_windows_service!(ffi_service_main, service_main);

fn service_main(_arguments: Vec<OsString>) {
    let Some(cfg) = SERVICE_CONFIG.get().cloned() else {
        return;
    };
    if let Err(e) = run_service(cfg) {
        tracing::error!(error = %e, "service failed");
    }
}

fn status(state: ServiceState, accept: ServiceControlAccept, exit: u32) -> ServiceStatus {
    ServiceStatus {
        service_type: SERVICE_TYPE,
        current_state: state,
        controls_accepted: accept,
        exit_code: ServiceExitCode::Win32(exit),
        checkpoint: 0,
        wait_hint: if state == ServiceState::StopPending {
            STOP_WAIT
        } else {
            Duration::default()
        },
        process_id: None,
    }
}

fn run_service(cfg: AgentConfig) -> Result<(), AgentError> {
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    // The handler reports "stop pending" itself, so the last flush does not look like a hang.
    let status_handle: Arc<OnceLock<ServiceStatusHandle>> = Arc::new(OnceLock::new());
    let handler_status = Arc::clone(&status_handle);
    let handler = move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown | ServiceControl::Preshutdown => {
            let _ = stop_tx.send(true);
            if let Some(h) = handler_status.get() {
                let _ = h.set_service_status(status(
                    ServiceState::StopPending,
                    ServiceControlAccept::empty(),
                    0,
                ));
            }
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let handle = service_control_handler::register(SERVICE_NAME, handler)
        .map_err(service_error("register the control handler of"))?;
    let _ = status_handle.set(handle);
    let set = |state, accept, exit| {
        if let Err(e) = handle.set_service_status(status(state, accept, exit)) {
            tracing::error!(error = %e, "cannot report the service status");
        }
    };
    set(
        ServiceState::Running,
        ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
        0,
    );
    tracing::info!(service = SERVICE_NAME, "service running");

    let shutdown = async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
        tracing::info!("service stop requested: flushing the spool and stopping");
    };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AgentError::Config(format!("cannot start the async runtime: {e}")))
        .and_then(|rt| rt.block_on(runner::run(&cfg, RunOptions::default(), shutdown)));
    let exit = match &result {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "agent stopped with an error");
            1
        }
    };
    set(ServiceState::Stopped, ServiceControlAccept::empty(), exit);
    result
}

/// Where the service logs: `<data-dir>\logs\onshi-agent.log` (a service has no console). The
/// file is started afresh, keeping the previous one as `.old`, when it passes 10 MB.
pub fn log_file(cfg: &AgentConfig) -> PathBuf {
    let dir = cfg.data_dir.join("logs");
    let path = dir.join("onshi-agent.log");
    let _ = std::fs::create_dir_all(&dir);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() > 10 * 1024 * 1024) {
        let _ = std::fs::rename(&path, dir.join("onshi-agent.log.old"));
    }
    path
}
