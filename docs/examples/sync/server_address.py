import os  # added for the tests
import trio_socketserver.sync as socketserver

class HTTPRequestHandler(socketserver.BaseRequestHandler):
    def handle(self):
        print(f"Received request from {self.client_address[0]}")
        # Process the HTTP request here
        ...

server = socketserver.TCPServer(("127.0.0.1", int(os.environ.get("EXAMPLE_PORT", "8000"))), HTTPRequestHandler)  # port from the environment
server.server_address  # ('127.0.0.1', 8000)
