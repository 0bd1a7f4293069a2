<#
.SYNOPSIS
  Removes the Onshi Watch agent service and program files. Run from an elevated PowerShell.
  -Purge also deletes %ProgramData%\OnshiWatch (identity, spool, logs); without it the data stays
  so that a reinstall keeps the terminal's identity and unsent events.
#>
[CmdletBinding()]
param([switch] $Purge)
$ErrorActionPreference = 'Stop'
$exe = Join-Path (Join-Path $env:ProgramFiles 'OnshiWatch') 'onshi-agent.exe'
$dataDir = Join-Path $env:ProgramData 'OnshiWatch'
if (Test-Path $exe) {
    & $exe --data-dir $dataDir uninstall
    if ($LASTEXITCODE -ne 0) { throw "onshi-agent uninstall failed (exit $LASTEXITCODE)." }
    Remove-Item -Recurse -Force (Split-Path $exe)
}
if ($Purge) { Remove-Item -Recurse -Force $dataDir -ErrorAction SilentlyContinue }
Write-Host 'Onshi Watch agent removed.'
