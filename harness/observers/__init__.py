"""Observers watch the stack while a run goes and write what they see to the journal."""
