"""The agents' and supervisors' console: HTTP API, Socket.IO namespaces, access, masking."""
