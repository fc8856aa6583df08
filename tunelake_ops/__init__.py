"""Operating the platform (the top layer, which nothing imports): the `tunelake` command,
the job registry, the local stack, the demo and the Airflow wiring."""
