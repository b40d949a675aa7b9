"""A run's surroundings, one job per module: errors (`errors`), atomic writes (`files`),
devices and seeds (`devices`), compilation (`compiling`), torchrun (`processes`), output
(`console`). Import from the module that does the job; nothing is re-exported here."""
