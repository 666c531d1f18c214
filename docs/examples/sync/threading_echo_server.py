import os  # added for the tests
import trio_socketserver.sync as socketserver

class EchoRequestHandler(socketserver.BaseRequestHandler):

    def handle(self):
        # Get the client's request
        data = self.request.recv(1024)

        # Process the request (echo the message back)
        self.request.sendall(data)

class EchoServer(socketserver.ThreadingTCPServer):
    pass

if __name__ == "__main__":
    # Create the server on port 9999
    server = EchoServer(("", int(os.environ.get("EXAMPLE_PORT", "9999"))), EchoRequestHandler)  # port from the environment

    # Start the server
    print("listening on", server.server_address, flush=True)  # added for the tests
    server.serve_forever()
