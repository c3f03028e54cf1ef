"""The registration node family as a service, with its adapters chosen by configuration.

``python -m examples.registration_service`` runs it on the embedded default, or on Kafka,
PostgreSQL, Consul and Vault as the ``ONEX_*`` environment variables say
(:mod:`~examples.registration_service.config`), until SIGTERM or SIGINT
(:mod:`~examples.registration_service.service`). ``--simulate N`` drives it with N simulated
nodes (:mod:`~examples.registration_service.fleet`) and stops it by itself.
"""
