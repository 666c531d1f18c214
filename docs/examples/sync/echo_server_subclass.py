import os  # added for the tests
import trio_socketserver.sync as socketserver

class EchoRequestHandler(socketserver.BaseRequestHandler):

    def handle(self):
        # Get the data sent by the client.
        data = self.request.recv(1024)

        # Echo the data back to the client.
        self.request.sendall(data)

class EchoServer(socketserver.TCPServer):

    def __init__(self, server_address, RequestHandlerClass):
        super().__init__(server_address, RequestHandlerClass)

if __name__ == "__main__":
    # Create the server.
    server = EchoServer(("localhost", int(os.environ.get("EXAMPLE_PORT", "9999"))), EchoRequestHandler)  # port from the environment

    # Start the server.
    print("listening on", server.server_address, flush=True)  # added for the tests
    server.serve_forever()
