"""The agents' and supervisors' console and its Socket.IO namespaces (built with the console issue)."""
