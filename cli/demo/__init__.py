"""The zero-visit story of ``make run`` (``python -m cli.demo``), on the product's own services.

The story runs what a deployment runs: validators as OS processes (``imi devnet``
machinery, :class:`cli.devnet.Devnet`) and each agency's issuer service as an
``imi issue serve`` process (:mod:`cli.demo.issuer_process`). The demo itself is the
trustees, the agencies' staff, the citizen's wallet and the community service.

Modules, in the order of the story:

- :mod:`cli.demo.consortium` — the running devnet, its trustees, a node's answer proven
  against its commit certificate, and a validator killed;
- :mod:`cli.demo.agencies` — two bureaus accredited, their credential types and status
  lists, their issuer services started;
- :mod:`cli.demo.issuer_process` — an issuer or verifier service as an OS process (start,
  health, staff's status actions, stop);
- :mod:`cli.demo.citizen` — wallet, did:imi, recovery kit, credentials received;
- :mod:`cli.demo.service` — the community service's questions, verdicts, and what it
  learned; suspension and revocation seen from the service;
- :mod:`cli.demo.recovery` — the lost phone and recovery by the pre-committed key;
- :mod:`cli.demo.story` — the steps in order, their checks, :func:`~cli.demo.story.run_story`;
- :mod:`cli.demo.narration` — the terminal narration and the closing summary (``main``).

Shared with ``imi devnet up --demo`` (these never import :mod:`cli.devnet`, which imports
them): :mod:`cli.demo.setup` (the chain the setup writes to, registering and starting a
verifier), :mod:`cli.demo.agencies`, :mod:`cli.demo.issuer_process`, and for the devnet
only :mod:`cli.demo.people` (registers of fictional people) and
:mod:`cli.demo.devnet_demo` (what ``--demo`` starts, ``DIR/demo.json``).

Nothing but :mod:`cli.demo.narration` prints.
"""
