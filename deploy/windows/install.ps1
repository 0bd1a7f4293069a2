<#
.SYNOPSIS
  Installs the Onshi Watch agent on an online qualification confirmation terminal.

.DESCRIPTION
  Run from an elevated PowerShell on the terminal, with onshi-agent.exe beside this script:

    powershell -ExecutionPolicy Bypass -File install.ps1 -Server https://watch.example.jp `
      -Code K7QX-M2TA-9PZD -WindowsAccount <name> -FaceAuthAccount <name> -LinkageAccount <name>

  The account names are the ones the vendor created at installation (see the hearing sheet).
  The script never changes those accounts; it only tells the agent which ones to watch.

  Steps: copy the binary to %ProgramFiles%\OnshiWatch, lock %ProgramData%\OnshiWatch down to
  SYSTEM and Administrators (the agent token lives there), write agent.toml, enroll and register
  the service (auto start, LocalSystem, restart on failure), turn on account-management auditing
  so account changes name who made them, and check the service runs.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)][string] $Server,
    [Parameter(Mandatory = $true)][string] $Code,
    [string] $WindowsAccount,
    [string] $FaceAuthAccount,
    [string] $LinkageAccount,
    [string] $AdministratorAccount,
    [string] $CaCert,
    [string] $BackupPfx
)
$ErrorActionPreference = 'Stop'

$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    throw 'Run this script from an elevated PowerShell (Run as administrator).'
}

$source = Join-Path $PSScriptRoot 'onshi-agent.exe'
if (-not (Test-Path $source)) { throw "onshi-agent.exe not found beside the script ($source)." }
$hashFile = "$source.sha256"
if (Test-Path $hashFile) {
    $expected = (Get-Content $hashFile -Raw).Split(' ')[0].Trim().ToUpperInvariant()
    $actual = (Get-FileHash -Algorithm SHA256 $source).Hash
    if ($expected -ne $actual) { throw "onshi-agent.exe does not match $hashFile." }
}

$programDir = Join-Path $env:ProgramFiles 'OnshiWatch'
$dataDir = Join-Path $env:ProgramData 'OnshiWatch'
New-Item -ItemType Directory -Force -Path $programDir, $dataDir | Out-Null

$exe = Join-Path $programDir 'onshi-agent.exe'
if (Get-Service -Name OnshiWatchAgent -ErrorAction SilentlyContinue) {
    Stop-Service -Name OnshiWatchAgent -ErrorAction SilentlyContinue
}
Copy-Item -Force $source $exe

# Only SYSTEM and Administrators may read the data directory: identity.json holds the token.
icacls $dataDir /inheritance:r /grant:r '*S-1-5-18:(OI)(CI)F' '*S-1-5-32-544:(OI)(CI)F' | Out-Null

$config = Join-Path $dataDir 'agent.toml'
$lines = @("server = `"$Server`"")
if ($CaCert) {
    $caTarget = Join-Path $dataDir 'server-ca.pem'
    Copy-Item -Force $CaCert $caTarget
    $lines += "ca_cert = '$caTarget'"
}
$roles = [ordered]@{
    windows       = $WindowsAccount
    face_auth     = $FaceAuthAccount
    linkage       = $LinkageAccount
    administrator = $AdministratorAccount
}
foreach ($role in $roles.Keys) {
    if ($roles[$role]) {
        $lines += ''
        $lines += '[[accounts]]'
        $lines += "role = `"$role`""
        $lines += "name = `"$($roles[$role])`""
    }
}
Set-Content -Path $config -Value $lines -Encoding UTF8

# The code goes through the environment, not the command line (process lists show arguments).
$env:ONSHI_AGENT_ENROLL_CODE = $Code
try {
    & $exe --config $config --data-dir $dataDir install --server $Server
    if ($LASTEXITCODE -ne 0) { throw "onshi-agent install failed (exit $LASTEXITCODE)." }
} finally {
    Remove-Item Env:\ONSHI_AGENT_ENROLL_CODE -ErrorAction SilentlyContinue
}

# Account Management auditing: Security events 4720-4726, 4738, 4740, 4781 name who changed what.
auditpol /set /subcategory:'{0CCE9235-69AE-11D9-BED3-505054503030}' /success:enable /failure:enable | Out-Null

# Restart on failure (install sets it; set it again in case the SCM refused).
sc.exe failure OnshiWatchAgent reset= 86400 actions= restart/60000/restart/60000/restart/300000 | Out-Null

Start-Sleep -Seconds 3
$service = Get-Service -Name OnshiWatchAgent
if ($service.Status -ne 'Running') { throw "OnshiWatchAgent is $($service.Status), not Running." }
Write-Host 'Onshi Watch agent installed and running.'

if ($BackupPfx) {
    # Checks the clinic's certificate backup (default password 1357 unless ONSHI_AGENT_BACKUP_PASSWORD is set).
    & $exe --config $config --data-dir $dataDir verify-backup $BackupPfx
}
