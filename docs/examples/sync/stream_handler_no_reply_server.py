import os  # added for the tests
import trio_socketserver.sync as socketserver

# Create a TCP server
class MyTCPServer(socketserver.TCPServer):
    pass

# Create a TCP handler
class MyTCPRequestHandler(socketserver.StreamRequestHandler):
    # Handle incoming requests
    def handle(self):
        # Receive and print the message
        message = self.request.recv(1024)
        print(f"{self.client_address[0]} wrote:\n{message}")

# Run the server
server = MyTCPServer(('localhost', int(os.environ.get("EXAMPLE_PORT", "8888"))), MyTCPRequestHandler)  # port from the environment
print("listening on", server.server_address, flush=True)  # added for the tests
server.serve_forever()
