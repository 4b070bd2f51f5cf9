-- Undo 0002.runs: drops every run and its events.
DROP TABLE run_events;
DROP TABLE runs;
