"""Local stand-ins for the services billbot talks to, started by the tests."""
