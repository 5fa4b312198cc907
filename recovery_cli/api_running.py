"""The API of one process (``serve``, ``watch --listen``): its app, its server, its gate
reloaded with the config, and its way out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from recovery_cli.api_server import ApiServer, Listen, check_exposure
from recovery_cli.handler_calls import STOPPING

if TYPE_CHECKING:
    from recovery_cli.api_auth import Gate
    from recovery_cli.invocation import Session
    from recovery_cli.watch import EventLog

DRAIN_SECONDS = 30.0  # how long the way out waits for recoveries an alert started


class RunningApi:
    def __init__(
        self,
        session: Session,
        listen: Listen,
        insecure: bool,
        log: EventLog | None = None,
    ) -> None:
        from recovery_cli.alert_receiver import AlertReceiver
        from recovery_cli.api_actions import ApiActions
        from recovery_cli.api_app import Api

        api = session.config.api
        self.session = session
        self.listen = listen
        self.insecure = insecure
        self.tls = api.ssl_certfile is not None  # as started: TLS files are read once
        check_exposure(listen, bool(api.tokens), self.tls, insecure)
        gate = self._gate()
        receiver = AlertReceiver(
            api.alertmanager.component_label, api.alertmanager.dedup_seconds, session.env.host
        )
        actions = ApiActions(session, log.record if log else None)
        self.api = Api(actions, gate, receiver, log.note if log else None)
        self.server = ApiServer(self.api.app, listen, api)
        self.server.start()

    def _gate(self) -> Gate:
        """The tokens the config names now; their values stay redacted for the process's
        life, whatever a later reload names."""
        from recovery_cli.api_auth import Gate

        gate = Gate.from_config(self.session.config.api, self.session.env.environ)
        self.session.keep_redacting(gate.auth.secrets())
        return gate

    def reload(self) -> str | None:
        """Tokens again from the reloaded config; the reason when they are refused (the old
        ones are kept). The address and TLS stay as started until a restart."""
        from recovery_cli.errors import RecoveryError

        api = self.session.config.api
        try:
            check_exposure(self.listen, bool(api.tokens), self.tls, self.insecure)
            self.api.gate = self._gate()
        except RecoveryError as exc:
            self.session.keep_redacting(self.api.gate.auth.secrets())
            return "; ".join(exc.lines())
        self.api.receiver.component_label = api.alertmanager.component_label
        self.api.receiver.dedup_seconds = api.alertmanager.dedup_seconds
        return None

    def stop(self) -> None:
        """Stop taking calls; steps still running are ended and recorded interrupted."""
        STOPPING.set()
        self.server.stop()
        self.api.background.drain(DRAIN_SECONDS)
