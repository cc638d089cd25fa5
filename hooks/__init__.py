"""iron.hooks: what runs during a container's life: the network hook (and the Landlock helper, in C)."""
