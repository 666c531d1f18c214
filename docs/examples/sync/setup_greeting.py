import os  # added for the tests
import trio_socketserver.sync as socketserver

class MyRequestHandler(socketserver.BaseRequestHandler):
    def setup(self):
        self.greeting = "Hello from the server!"

server = socketserver.TCPServer(("localhost", int(os.environ.get("EXAMPLE_PORT", "8080"))), MyRequestHandler)  # port from the environment
print("listening on", server.server_address, flush=True)  # added for the tests
server.serve_forever()
