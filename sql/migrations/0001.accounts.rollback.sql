-- Undo 0001.accounts: drops every account, session and token.
DROP TABLE login_attempts;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE users;
