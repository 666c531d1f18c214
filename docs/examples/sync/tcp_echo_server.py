import os  # added for the tests
import trio_socketserver.sync as socketserver

class EchoRequestHandler(socketserver.BaseRequestHandler):
    def handle(self):
        # Get the data from the client
        data = self.request.recv(1024)

        # Echo the data back to the client
        self.request.sendall(data)

if __name__ == "__main__":
    # Create a server instance
    server = socketserver.TCPServer(("", int(os.environ.get("EXAMPLE_PORT", "9999"))), EchoRequestHandler)  # port from the environment

    # Start the server
    print("listening on", server.server_address, flush=True)  # added for the tests
    server.serve_forever()
