"""Faults on a stack's processes, chosen by role: kill, freeze, restart."""
